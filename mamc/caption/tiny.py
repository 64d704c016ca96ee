"""The embedded captioner: a small LLaVA-architecture model (CLIP vision tower + projector + Llama language model)
built locally, trained on its own corpus in LLaVA's two stages (the vision tower on attribute labels, then the
captioner with the tower frozen), and saved with `save_pretrained`, so that the captioning job loads it through
the same Auto classes as a real checkpoint, with no hub."""
from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mamc import distributed as dist
from mamc.caption.corpus import captioner_corpus, clip_path
from mamc.caption.grid import candidate_frames, grid_array, grid_for_video
from mamc.caption.vlm import generate_captions, load_captioner, video_seed
from mamc.data.attributes import ATTRIBUTES, caption_accuracy
from mamc.data.video import sample_indices
from mamc.manifest import write_json
from mamc.progress import tqdm
from mamc.run import Run, use_threads

CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: "
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>\n{% else %}{{ c['text'] }}{% endif %}{% endfor %}"
    " {% else %}ASSISTANT: {% for c in message['content'] %}{{ c['text'] }}{% endfor %} </s>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
SPECIAL = ["<pad>", "<unk>", "<s>", "</s>", "<image>"]


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+|[^\sa-z]", text.lower())


def build_tokenizer(texts: list[str]):
    """A word-level tokenizer over the given texts (captions, prompt, chat markers): tiny vocabulary, fast."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIAL)}
    for text in texts + ["USER: ASSISTANT:", "video image"]:
        for w in words(text):
            vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split("<image>", "isolated"), pre_tokenizers.Whitespace()])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", extra_special_tokens={"image_token": "<image>"})
    fast.add_special_tokens({"additional_special_tokens": ["<image>"]})
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_captioner(texts: list[str], image_size: int, patch: int = 16, width: int = 128, seed: int = 0,
                    feature_layer: int = -1, vision: dict | None = None, text: dict | None = None):
    """An untrained LLaVA (processor, model) whose tokenizer covers `texts`: the tiny one of the embedded
    captioner, or any other shape through `vision`/`text` (config fields overriding the tiny ones) and
    `feature_layer` (LLaVA-1.5 reads the vision tower's second-to-last layer)."""
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    torch.manual_seed(seed)
    tok = build_tokenizer(texts)
    image_processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                         crop_size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=patch,
                               vision_feature_select_strategy="default", chat_template=CHAT_TEMPLATE,
                               num_additional_image_tokens=1)
    vision_config = CLIPVisionConfig(**{**dict(image_size=image_size, patch_size=patch, hidden_size=width,
                                               intermediate_size=2 * width, num_hidden_layers=2, num_attention_heads=4,
                                               projection_dim=width), **(vision or {})})
    text_config = LlamaConfig(**{**dict(vocab_size=len(tok), hidden_size=width, intermediate_size=2 * width,
                                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                                        max_position_embeddings=512), **(text or {}),
                                 **dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                        pad_token_id=tok.pad_token_id)})
    config = LlavaConfig(vision_config=vision_config, text_config=text_config,
                         image_token_id=tok.convert_tokens_to_ids("<image>"), vision_feature_select_strategy="default",
                         vision_feature_layer=feature_layer, projector_hidden_act="gelu")
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    return processor, model


def training_batch(processor, images, captions: list[str], prompt: str) -> dict[str, torch.Tensor]:
    """Prompt + caption + </s> with the loss on the caption tokens only (prompt and padding masked with -100)."""
    tok = processor.tokenizer
    tok.padding_side = "right"
    prompt_text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}], add_generation_prompt=True)
    full = [f"{prompt_text} {c} </s>" for c in captions]
    enc = processor(images=images, text=full, return_tensors="pt", padding=True)
    prompt_len = processor(images=images[:1], text=[prompt_text], return_tensors="pt")["input_ids"].shape[1]
    labels = enc["input_ids"].clone()
    labels[:, :prompt_len] = -100
    labels[enc["attention_mask"] == 0] = -100
    enc["labels"] = labels
    tok.padding_side = "left"
    return enc


def pixel_values(image_processor, grids: np.ndarray) -> torch.Tensor:
    """`image_processor(images=list(grids))["pixel_values"]` for square uint8 grids [B, S, S, 3] already at the
    processor's size, where its resize and centre crop leave them as they are. The processor's arithmetic
    (rescale in float64, to float32, normalise per channel) is applied once to each of the 256 byte values of each
    channel and the batch is looked up in that table: the same numbers, bit for bit (a test checks), at a fifth
    of the processor's cost."""
    side = image_processor.crop_size["height"]
    if grids.shape[1:] != (side, side, 3) or image_processor.size.get("shortest_edge") != side:
        raise ValueError(f"grids of shape {grids.shape[1:]} are not square RGB at the processor's size {side}")
    levels = (np.arange(256, dtype=np.float64) * image_processor.rescale_factor).astype(np.float32)
    mean, std = (np.asarray(v, np.float32)[:, None] for v in (image_processor.image_mean, image_processor.image_std))
    table = (levels - mean) / std  # [channel, byte value]
    out = np.empty((len(grids), 3, side, side), np.float32)
    for c in range(3):
        np.take(table[c], grids[..., c], out=out[:, c])
    return torch.from_numpy(out)


def fit(params: list[torch.nn.Parameter],
        batch_loss: Callable[[np.ndarray, list[np.random.Generator]], tuple[torch.Tensor, int]], n: int, steps: int,
        batch_size: int, lr: float, seed: int, desc: str, progress: bool = True,
        after_step: Callable[[int], None] | None = None) -> list[float]:
    """AdamW with a one-cycle schedule over random batches of `n` examples. `batch_loss(indices, rngs)` returns
    the summed loss of those examples and how many terms the sum holds (examples, or caption tokens), drawing each
    example's augmentation from its own generator in `rngs` (seeded by seed, step and place in the batch).

    Under a process group (`mamc.distributed.on_ranks`) each rank takes its share of every batch and the gradient
    is that of the whole batch's mean loss, so the ranks stay identical and train what one process would, up to
    float rounding. Calls `after_step(k)` after step k. Returns the loss curve (each batch's mean loss)."""
    world = dist.world_size()
    if min(batch_size, n) < world:
        raise ValueError(f"a batch of {min(batch_size, n)} examples cannot be shared by {world} processes")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    # A tenth of the steps to warm up (at least 2.5, which keeps OneCycleLR off a zero-length phase).
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1),
                                                pct_start=min(0.9, max(0.1, 2.5 / max(steps, 1))))
    losses = []
    for step in tqdm(range(1, steps + 1), desc=desc, disable=not progress):
        batch = rng.choice(n, size=min(batch_size, n), replace=False)
        mine = np.array_split(np.arange(len(batch)), world)[dist.rank()]
        total, count = batch_loss(batch[mine], [np.random.default_rng([seed, step, int(k)]) for k in mine])
        summed = dist.sum_over_ranks(torch.stack([total.detach(), torch.tensor(float(count), device=total.device)]))
        opt.zero_grad(set_to_none=True)
        (total * world / summed[1]).backward()
        dist.average_grads(params)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(float(summed[0] / summed[1]))
        if after_step is not None:
            after_step(step)
    return losses


def pretrain_vision(processor, model, images: Callable[[int, np.random.Generator], np.ndarray],
                    labels: dict[str, list[str]], steps: int, batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
                    progress: bool = True, after_step: Callable[[int], None] | None = None) -> list[float]:
    """Stage 1, as a real LLaVA's vision encoder is trained before the captioner: the vision tower alone, with one
    linear head per attribute (`labels[attribute][i]` of example i) on its mean patch feature — the feature the
    projector reads. The heads are dropped afterwards. Returns the loss curve (sum of the heads' cross-entropies)."""
    tower = model.model.vision_tower
    classes = {k: sorted(set(v)) for k, v in labels.items()}
    targets = {k: torch.tensor([classes[k].index(x) for x in v]) for k, v in labels.items()}
    width = tower.config.hidden_size
    heads = torch.nn.ModuleDict({k: torch.nn.Linear(width, len(c)) for k, c in classes.items()})
    tower.train()

    def batch_loss(idx: np.ndarray, rngs: list[np.random.Generator]) -> tuple[torch.Tensor, int]:
        pixels = pixel_values(processor.image_processor, np.stack([images(i, r) for i, r in zip(idx, rngs)]))
        feature = tower(pixel_values=pixels).last_hidden_state[:, 1:].mean(1)
        return sum(torch.nn.functional.cross_entropy(head(feature), targets[k][idx], reduction="sum")
                   for k, head in heads.items()), len(idx)

    n = len(next(iter(labels.values())))
    return fit([*tower.parameters(), *heads.parameters()], batch_loss, n, steps, batch_size, lr, seed, "vision tower",
               progress, after_step)


def train_captioner(processor, model, images: list | Callable[[int, np.random.Generator], np.ndarray | Image.Image],
                    captions: list[str], prompt: str, steps: int, batch_size: int = 16, lr: float = 5e-4,
                    seed: int = 0, progress: bool = True, snapshots: dict[int, Path] | None = None,
                    freeze_vision: bool = False, after_step: Callable[[int], None] | None = None) -> list[float]:
    """Teacher-forced training on (grid, caption) pairs, saving the captioner in `snapshots[k]` as it is after k
    steps (weaker captioners from the same training). With `freeze_vision` the vision tower stays as it is
    (LLaVA-1.5 keeps its pretrained encoder frozen).

    `images` is a list of grids, or a function (index, rng) → grid that draws a new grid each time (data
    augmentation). Returns the loss curve (mean cross-entropy per caption token)."""
    image = images if callable(images) else (lambda i, _rng: images[i])
    model.model.vision_tower.requires_grad_(not freeze_vision)
    model.train()

    def batch_loss(idx: np.ndarray, rngs: list[np.random.Generator]) -> tuple[torch.Tensor, int]:
        batch = training_batch(processor, [image(i, r) for i, r in zip(idx, rngs)], [captions[i] for i in idx], prompt)
        target = batch.pop("labels")[:, 1:]  # token t is predicted from the tokens before it
        logits = model(**batch).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), reduction="sum")
        return loss, int((target != -100).sum())

    def each_step(step: int) -> None:
        if step in (snapshots or {}):
            save_captioner(snapshots[step], processor, model)
        if after_step is not None:
            after_step(step)

    losses = fit([p for p in model.parameters() if p.requires_grad], batch_loss, len(captions), steps, batch_size, lr,
                 seed, "captioner", progress, each_step)
    model.requires_grad_(True)
    model.eval()
    return losses


def save_captioner(folder: Path, processor, model, record: dict | None = None) -> None:
    """`save_pretrained` of model and processor, with `record` as training.json, all in one atomic rename; under
    a process group, rank 0 alone saves."""
    def save(tmp: Path) -> None:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        if record is not None:
            write_json(tmp / "training.json", record)

    if dist.rank() == 0:
        save_atomically(Path(folder), save)


def save_atomically(out_dir: Path, save: Callable[[Path], object]) -> None:
    """`save` into a temporary folder beside `out_dir`, then rename it into place: a kill leaves the old
    checkpoint folder or the new one, never a half-written folder that later runs would try to load."""
    tmp, old = out_dir.with_name(f".{out_dir.name}.tmp"), out_dir.with_name(f".{out_dir.name}.old")
    for leftover in (tmp, old):
        shutil.rmtree(leftover, ignore_errors=True)
    save(tmp)
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)


def train_embedded_captioner(cfg, progress: bool = True) -> dict:
    """Train the embedded captioner on its own corpus (`mamc.caption.corpus`, disjoint from the benchmark) and
    save it in the run folder, where `cfg.captioner == "embedded"` finds it, with a snapshot after each of
    `cfg.dose_captioner_steps` steps (the weaker captioners of the dose-response). Both stages train
    data-parallel on `cfg.parallel_runs` processes (one core each) when there are several. Its `training.json`
    records the loss curves and the seconds of each step, and then (`measure_captioner`) the held-out accuracy
    of the captioner and of every snapshot; returns that record."""
    clock = time.time()
    captioner_corpus(cfg, progress)
    seconds = {"corpus": time.time() - clock}
    clock = time.time()
    world = cfg.parallel_runs
    if world > 1:
        ticks = torch.multiprocessing.get_context("spawn").SimpleQueue()
        with tqdm(total=cfg.captioner_vision_steps + cfg.captioner_steps, disable=not progress,
                  desc=f"captioner, {world} processes") as bar:
            def poll() -> None:
                while not ticks.empty():
                    bar.update(ticks.get())

            dist.on_ranks(_train_stages, (cfg, ticks, False), world, poll)
    else:
        _train_stages(cfg, None, progress)
    stages = json.loads((Run(cfg).path("captioner") / "training.json").read_text())["seconds"]
    seconds["start-up"] = time.time() - clock - sum(stages.values())  # the wait, less the work the ranks report
    return measure_captioner(cfg, seconds)


def measure_captioner(cfg, seconds: dict[str, float] | None = None) -> dict:
    """Add to the embedded captioner's `training.json` the held-out accuracy of the captioner and of every
    snapshot (and `seconds`, further timings); returns the record. Kept apart from training so that a run killed
    while measuring finishes the measurement on its next call, with the training's record intact."""
    clock = time.time()
    final = Run(cfg).path("captioner")
    info = json.loads((final / "training.json").read_text()) if (final / "training.json").exists() else {}
    heldout = [r for r in captioner_corpus(cfg, progress=False) if r["part"] == "heldout"]
    steps = {k: snapshot_dir(cfg, k) for k in cfg.dose_snapshots} | {cfg.captioner_steps: final}
    info["heldout_accuracy"] = {str(k): heldout_accuracy(cfg, path, heldout) for k, path in steps.items()}
    info["n_heldout"] = len(heldout)
    info["seconds"] = {**(seconds or {}), **info.get("seconds", {}), "held-out accuracy": time.time() - clock}
    write_json(final / "training.json", info)
    return info


def _train_stages(cfg, ticks=None, progress: bool = True) -> None:
    """Both training stages of the embedded captioner, on this process's share of each batch under a process
    group (rank 0 saves, and reports each step to `ticks`). The captioner is saved with its training record:
    loss curves, sizes and the seconds of each stage."""
    use_threads(cfg.threads)
    seconds, clock = {}, time.time()

    def lap(stage: str) -> None:
        nonlocal clock
        seconds[stage], clock = time.time() - clock, time.time()

    rank, world = dist.rank(), dist.world_size()
    tick = (lambda _step: ticks.put(1)) if ticks is not None and rank == 0 else None
    rows = [r for r in captioner_corpus(cfg, progress=False) if r["part"] == "train"]
    frames: list = [None] * len(rows)  # each rank decodes every world-th clip, and all of them are shared
    for r, part in enumerate(dist.gather_objects([candidate_frames(clip_path(cfg, row), cfg) for row in tqdm(
            rows[rank::world], desc="decode", disable=not progress)])):
        frames[r::world] = part
    lap("decode")
    n_cells = cfg.grid_rows * cfg.grid_cols

    def jittered_grid(i: int, rng: np.random.Generator) -> np.ndarray:
        """A grid of frames drawn one per temporal segment, in order: the same events, new pixels."""
        return grid_array(frames[i][sample_indices(len(frames[i]), n_cells, "random", rng)], cfg.grid_rows, cfg.grid_cols)

    captions = [r["caption"] for r in rows]
    size = jittered_grid(0, np.random.default_rng(0)).shape[0]
    processor, model = build_captioner(captions + [cfg.prompt], image_size=size, seed=cfg.caption_seed)
    dist.broadcast_params(model)
    labels = {a: [str(r["attributes"][a]) for r in rows] for a in (*ATTRIBUTES, "change_to")}
    vision_losses = pretrain_vision(processor, model, jittered_grid, labels, cfg.captioner_vision_steps,
                                    cfg.captioner_batch_size, seed=cfg.caption_seed, progress=progress, after_step=tick)
    lap("vision tower")
    snapshots = {k: snapshot_dir(cfg, k) for k in cfg.dose_snapshots}
    losses = train_captioner(processor, model, jittered_grid, captions, cfg.prompt, cfg.captioner_steps,
                             batch_size=cfg.captioner_batch_size, lr=cfg.captioner_lr, seed=cfg.caption_seed, progress=progress,
                             snapshots=snapshots, freeze_vision=cfg.captioner_vision_steps > 0, after_step=tick)
    lap("captioner")
    save_captioner(Run(cfg).path("captioner"), processor, model, {
        "losses": losses, "vision_losses": vision_losses, "n_pairs": len(rows), "image_size": size,
        "parameters": sum(p.numel() for p in model.parameters()), "processes": world, "seconds": seconds})


def snapshot_dir(cfg, step: int) -> Path:
    """Where the captioner's snapshot after `step` training steps is saved."""
    return Run(replace(cfg, captioner_snapshot=step)).path("captioner")


def heldout_accuracy(cfg, captioner_dir: Path, rows: list[dict]) -> dict[str, float]:
    """Attribute accuracy of a saved captioner on held-out clips of its corpus, captioned as the caption job
    captions the benchmark (keyframe grid, the recipe's prompt and temperature, one seed per clip)."""
    cap = load_captioner(str(captioner_dir))
    texts = []
    for b in range(0, len(rows), cfg.caption_batch_size):
        batch = rows[b : b + cfg.caption_batch_size]
        seeds = [video_seed(cfg.caption_seed, r["video_id"]) for r in batch]
        texts += generate_captions(cap, [grid_for_video(clip_path(cfg, r), cfg) for r in batch], cfg.prompt,
                                   cfg.gen_temperature, cfg.max_new_tokens, seed=seeds)
    return caption_accuracy([r["attributes"] for r in rows], texts)
