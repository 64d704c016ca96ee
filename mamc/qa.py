"""Video QA on top of a pretrained dual encoder, trained with the paper's combined objective

    L = w · (L_contrastive + η · L_CE)

where L_CE is the cross-entropy of an answer-vocabulary head over [video; question] features and w is the
per-sample weight of the learned weighting MLP (the pretraining run's last snapshot, frozen here; w = 1 for
methods without meta weighting). Multiple-choice questions are answered by the head's logits restricted to the
candidates; open-ended ones by its argmax over the whole vocabulary.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from mamc.config import Config
from mamc.data.loaders import global_batch_indices, load_frames
from mamc.data.prepare import ensure_frames, load_rows
from mamc.embed import frozen_text_features, text_input
from mamc.evaluate import multiple_choice_accuracy, open_ended_accuracy
from mamc.losses import contrastive_loss
from mamc.manifest import write_json
from mamc.meta import sample_weights
from mamc.models import normalize_frames
from mamc.run import Run, resolve_device, use_threads
from mamc.runs import METHODS, load_trained, weight_net_snapshots


class QAHead(nn.Module):
    def __init__(self, dim: int, n_answers: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, n_answers))

    def forward(self, video, question):
        return self.mlp(torch.cat([F.normalize(video, dim=-1), F.normalize(question, dim=-1)], -1))


def train_and_evaluate_qa(cfg: Config, name: str, method: str, seed: int, progress: bool = False) -> dict:
    """Fine-tune run `name` for QA on `qa_train`, evaluate on `qa`; writes logs/<name>/qa.json."""
    device = resolve_device(cfg.device)
    use_threads(cfg.threads)
    torch.manual_seed(seed)
    model = load_trained(cfg, name).train()
    train_rows, test_rows = load_rows(cfg, "qa_train"), load_rows(cfg, "qa")
    ensure_frames(cfg, train_rows + test_rows)
    run = Run(cfg)
    cache = run.frame_cache
    vocab = sorted({a for r in train_rows + test_rows for a in [r["answer"], *r.get("candidates", [])]})
    index = {a: i for i, a in enumerate(vocab)}
    texts = [r["question"] for r in train_rows + test_rows] + [r["caption"] for r in train_rows]
    feats = frozen_text_features(model, texts, run.text_cache, device)
    head = QAHead(cfg.embed_dim, len(vocab)).to(device)
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr * 0.5, weight_decay=cfg.weight_decay)
    snapshots = weight_net_snapshots(cfg, name) if METHODS[method].meta else {}
    weight_net = snapshots[max(snapshots)].to(device) if snapshots else None
    spec = METHODS[method]
    b = min(cfg.batch_size, len(train_rows))
    for step in tqdm(range(cfg.qa_steps), desc=f"qa {name}", disable=not progress):
        part = [train_rows[i] for i in global_batch_indices(len(train_rows), b, step, seed + 7)]
        frames = normalize_frames(load_frames(part, cache, cfg.frames, "random", (seed, 7, step))).to(device)
        v = model.encode_video(frames)
        t = model.encode_text(text_input(model, [r["caption"] for r in part], feats, device))
        q = model.encode_text(text_input(model, [r["question"] for r in part], feats, device))
        answers = torch.tensor([index[r["answer"]] for r in part], device=device)
        l_con = contrastive_loss(spec.loss, v, t, cfg.margin, model.temperature())
        per_sample = l_con + cfg.qa_eta * F.cross_entropy(head(v, q), answers, reduction="none")
        with torch.no_grad():
            w = sample_weights(weight_net, per_sample, cfg.normalize_weights) if weight_net else torch.ones_like(per_sample)
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
            v = model.encode_video(normalize_frames(load_frames(part, cache, cfg.frames)).to(device))
            q = model.encode_text(text_input(model, [r["question"] for r in part], feats, device))
            logits.append(head(v, q).cpu())
        logits = torch.cat(logits)
    qtypes = [r.get("qtype", "all") for r in test_rows]
    width = max(len(r["candidates"]) for r in test_rows)
    cand_scores = torch.full((len(test_rows), width), -torch.inf)
    for i, r in enumerate(test_rows):
        cand_scores[i, : len(r["candidates"])] = logits[i, [index[c] for c in r["candidates"]]]
    mc = multiple_choice_accuracy(cand_scores, [r["candidates"].index(r["answer"]) for r in test_rows], qtypes)
    oe = open_ended_accuracy([vocab[i] for i in logits.argmax(1).tolist()], [r["answer"] for r in test_rows], qtypes)
    result = {"name": name, "method": method, "seed": seed, "mc": mc, "open": oe, "n_questions": len(test_rows),
              "chance_mc": 100.0 * sum(1 / len(r["candidates"]) for r in test_rows) / len(test_rows)}
    write_json(run.path("qa", name), result)
    return result
