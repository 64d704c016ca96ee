"""Video QA on top of a pretrained dual encoder, trained with the paper's combined objective

    L = w · (L_contrastive + η · L_CE)

where L_CE is the cross-entropy of an answer-vocabulary head over [video; question] features. L_contrastive
pairs each question's video with a caption of it: the row's own, or one of the video's captions in the
retrieval splits (MSRVTT-QA rows carry none); rows without any caption have no contrastive term.

The weight w comes from the pretraining run's weighting MLP at its best-on-validation step (frozen), computed
from the contrastive loss alone — the loss scale it was meta-trained on; feeding it L_con + η·L_CE, a scale it
never saw, would be extrapolation. Rows without a caption, and methods without meta weighting, get w = 1
(weights are normalised to mean 1, so the scales agree).

Multiple-choice questions (rows with `candidates`) are answered by the head's logits restricted to the
candidates; every question is also scored open-ended, by the argmax over the answer vocabulary (answers of
`qa_train` plus all listed candidates: a test answer outside it cannot be predicted and counts as wrong, as in
the MSRVTT-QA protocol). Ties are split, never handed to the first candidate.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mamc.config import Config
from mamc.data.loaders import global_batch_indices, load_frames, usable_rows
from mamc.data.prepare import ensure_frames, load_rows
from mamc.embed import frozen_text_features, text_input
from mamc.evaluate import answer_accuracy
from mamc.losses import contrastive_loss
from mamc.manifest import RETRIEVAL_SPLITS, write_json
from mamc.meta import sample_weights
from mamc.models import normalize_frames
from mamc.progress import tqdm
from mamc.run import Run, resolve_device, use_threads
from mamc.runs import METHODS, best_weight_net, load_trained


class QAHead(nn.Module):
    def __init__(self, dim: int, n_answers: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, n_answers))

    def forward(self, video, question):
        return self.mlp(torch.cat([F.normalize(video, dim=-1), F.normalize(question, dim=-1)], -1))


def _captions_by_video(rows: list[dict]) -> dict[str, str]:
    """A caption of each video from the non-test retrieval splits (the first one listed)."""
    out: dict[str, str] = {}
    for r in rows:
        if r["split"] in RETRIEVAL_SPLITS and r["split"] != "test" and r["caption"]:
            out.setdefault(r["video_id"], r["caption"])
    return out


def _split(cfg: Config, rows: list[dict], split: str) -> list[dict]:
    part = [r for r in rows if r["split"] == split]
    if not part:
        raise ValueError(f"{Run(cfg).path('manifest')} has no {split!r} rows: QA needs qa_train and qa; ingest a QA dataset "
                         "into the same manifest (`mamc ingest msrvtt-qa … --out` it) or run with qa=False / --no-qa")
    return part


def train_and_evaluate_qa(cfg: Config, name: str, method: str, seed: int, progress: bool = False) -> dict:
    """Fine-tune run `name` for QA on `qa_train`, evaluate on `qa`; writes logs/<name>/qa.json."""
    device = resolve_device(cfg.device)
    use_threads(cfg.threads)
    torch.manual_seed(seed)
    rows = load_rows(cfg)
    train_rows, test_rows = _split(cfg, rows, "qa_train"), _split(cfg, rows, "qa")
    model = load_trained(cfg, name).train()
    ensure_frames(cfg, train_rows + test_rows)
    run = Run(cfg)
    train_rows, test_rows = usable_rows(train_rows, run.frame_cache), usable_rows(test_rows, run.frame_cache)
    cache = run.frame_cache
    known = _captions_by_video(rows)
    captions = [r["caption"] or known.get(r["video_id"], "") for r in train_rows]
    vocab = sorted({r["answer"] for r in train_rows} | {c for r in train_rows + test_rows for c in r.get("candidates", [])})
    index = {a: i for i, a in enumerate(vocab)}
    texts = [r["question"] for r in train_rows + test_rows] + [c for c in captions if c]
    feats = frozen_text_features(model, texts, run.text_cache, device)
    head = QAHead(cfg.embed_dim, len(vocab)).to(device)
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr * 0.5, weight_decay=cfg.weight_decay)
    spec = METHODS[method]
    weight_net = best_weight_net(cfg, name) if spec.meta else None
    weight_net = weight_net.to(device) if weight_net is not None else None
    b = min(cfg.batch_size, len(train_rows))
    for step in tqdm(range(cfg.qa_steps), desc=f"qa {name}", disable=not progress):
        picked = global_batch_indices(len(train_rows), b, step, seed + 7)
        part = [train_rows[i] for i in picked]
        frames = normalize_frames(load_frames(part, cache, cfg.frames, "random", (seed, 7, step)).to(device))
        v = model.encode_video(frames)
        q = model.encode_text(text_input(model, [r["question"] for r in part], feats, device))
        answers = torch.tensor([index[r["answer"]] for r in part], device=device)
        per_sample = cfg.qa_eta * F.cross_entropy(head(v, q), answers, reduction="none")
        w = torch.ones_like(per_sample)
        has = torch.tensor([bool(captions[i]) for i in picked], device=device)
        if int(has.sum()) >= 2:
            t = model.encode_text(text_input(model, [captions[i] for i in picked if captions[i]], feats, device))
            l_con = contrastive_loss(spec.loss, v[has], t, cfg.margin, model.temperature())
            per_sample = per_sample + torch.zeros_like(per_sample).masked_scatter(has, l_con)
            if weight_net is not None:
                with torch.no_grad():
                    w = w.masked_scatter(has, sample_weights(weight_net, l_con, cfg.normalize_weights))
        loss = (w * per_sample).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
    model.eval()
    head.eval()
    with torch.no_grad():
        logits = []
        for s in range(0, len(test_rows), 256):
            part = test_rows[s : s + 256]
            v = model.encode_video(normalize_frames(load_frames(part, cache, cfg.frames).to(device)))
            q = model.encode_text(text_input(model, [r["question"] for r in part], feats, device))
            logits.append(head(v, q).cpu())
        logits = torch.cat(logits)
    qtypes = [r.get("qtype") or "all" for r in test_rows]
    result = {"name": name, "method": method, "seed": seed, "n_questions": len(test_rows), "answer_vocabulary": len(vocab),
              "answers_outside_vocabulary": sum(r["answer"] not in index for r in test_rows),
              "open": answer_accuracy(logits, [index.get(r["answer"], -1) for r in test_rows], qtypes),
              "mc": None, "chance_mc": None}
    if all(r.get("candidates") for r in test_rows):
        width = max(len(r["candidates"]) for r in test_rows)
        cand_scores = torch.full((len(test_rows), width), -torch.inf)
        for i, r in enumerate(test_rows):
            cand_scores[i, : len(r["candidates"])] = logits[i, [index[c] for c in r["candidates"]]]
        result["mc"] = answer_accuracy(cand_scores, [r["candidates"].index(r["answer"]) for r in test_rows], qtypes)
        result["chance_mc"] = 100.0 * sum(1 / len(r["candidates"]) for r in test_rows) / len(test_rows)
    write_json(run.path("qa", name), result)
    return result
