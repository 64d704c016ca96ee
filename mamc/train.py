"""The trainer: `training_step`, one step of any method, and `train`, the loop around it (validation, the plateau
rule, logs and checkpoints), from a laptop CPU to torchrun on several GPUs.

A step is the four steps of notebook 03 (methods without meta weighting take only the last):

1. virtual step   θ̂(φ) = θ − α ∇θ (1/B) Σᵢ w_φ(ℓᵢ(θ)) ℓᵢ(θ)     on the training batch, graph kept;
2. meta loss      L_meta(φ) = (1/M) Σⱼ ℓⱼ(θ̂(φ))                    on a clean, concept-balanced meta batch;
3. MLP update     φ ← φ − β ∇φ L_meta                                (Adam on the weighting MLP);
4. real step      θ ← AdamW(θ, ∇θ (1/B) Σᵢ w_φ(ℓᵢ(θ)) ℓᵢ(θ))         with the updated, detached weights.

α follows the model's learning-rate schedule: α_t = virtual_lr × lr_t / lr, so the virtual step shrinks with
the real one during warmup (and decay, under the cosine schedule). Steps 1–3 are `mamc.meta.meta_step`; ℓ is
the per-sample loss of the method (`mamc.losses.contrastive_loss`: InfoNCE, subtractive or additive angular
margin), computed once per step: steps 1 and 4 differentiate the same forward.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.tensorboard import SummaryWriter

from mamc import distributed as dist
from mamc import preempt
from mamc.checkpoint import load_checkpoint, read_record, save_checkpoint, save_weights
from mamc.config import Config
from mamc.data.loaders import StepBatches, step_loader, usable_rows
from mamc.data.prepare import ensure_frames, load_rows
from mamc.embed import embed_rows, frozen_text_features, text_input
from mamc.evaluate import video_text_retrieval
from mamc.lock import locked
from mamc.logs import SAMPLE_FIELDS, append_csv, cut_logs, log_lengths, write_scalars, write_scalars_csv
from mamc.losses import contrastive_loss
from mamc.manifest import write_json
from mamc.meta import WeightNet, call_with, meta_kernels, meta_step, sample_weights, select_params
from mamc.models import DualEncoder, build_model, normalize_frames
from mamc.progress import tqdm
from mamc.run import CAPTIONS, MissingArtifact, Run, deterministic, resolve_device, use_threads
from mamc.runs import METHODS, Method, knob_sources, load_trained, run_name, topic_groups


@dataclass
class TrainingData:
    """What the training loop reads: usable rows per split (no train rows when they stream from shards), where
    their clips are (the frame cache, or the small splits' clips read from shards) and the text inputs."""

    train: list[dict]
    meta: list[dict]
    val: list[dict]
    cache: Path | dict[str, np.ndarray]
    text_features: dict[str, torch.Tensor] | None


def prepare(cfg: Config, model: DualEncoder, with_vlm: bool, device: torch.device, meta: bool = True) -> TrainingData:
    """Load manifests, make sure frames are cached, and cache frozen text features. Training needs usable `train`
    and `val` rows (model selection), and `meta` rows when the method meta-learns its weights. With shards, the
    meta and val splits are read from theirs into memory and the training rows stream (`train_stream`)."""
    run = Run(cfg)
    if cfg.data_format == "shards":
        from mamc.data.stream import read_split

        parts = [read_split(run.shards(split)) for split in (("meta", "val") if meta else ("val",))]
        rows, clips = [r for p in parts for r in p[0]], {k: v for p in parts for k, v in p[1].items()}
        feats = frozen_text_features(model, [r["caption"] for r in rows], run.text_cache, device)
        return TrainingData([], [r for r in rows if r["split"] == "meta"], [r for r in rows if r["split"] == "val"],
                            clips, feats)
    rows = load_rows(cfg, with_vlm=with_vlm)
    ensure_frames(cfg, rows)

    def by(split: str, needed: bool = True) -> list[dict]:
        listed = [r for r in rows if r["split"] == split]
        usable = usable_rows(listed, run.frame_cache)
        if needed and not usable:
            why = f"its {len(listed)} row(s) name videos that failed to decode" if listed else "it has none"
            raise ValueError(f"{run.path('manifest')}: no usable {split!r} rows ({why}); a public dataset gets val and "
                             "meta splits from `mamc ingest … --val N --meta-per-concept K` (docs/PAPER_RUN.md)")
        return usable

    feats = frozen_text_features(model, [r["caption"] for r in rows], run.text_cache, device)
    return TrainingData(by("train"), by("meta", meta), by("val"), run.frame_cache, feats)


def train_batches(cfg: Config, data: TrainingData, with_vlm: bool, local: int, rank: int, world: int, seed: int,
                  start: int, stop: int) -> torch.utils.data.DataLoader:
    """This rank's training batches for steps [start, stop), from the frame cache or streamed from shards."""
    if cfg.data_format == "cache":
        if len(data.train) < cfg.batch_size:
            raise ValueError(f"{len(data.train)} usable training rows for a batch of {cfg.batch_size}")
        return step_loader(StepBatches(data.train, data.cache, cfg.frames, cfg.batch_size, local, rank, seed, 0),
                           start, stop, cfg.num_workers)
    from mamc.data.stream import ShardStream, stream_loader

    run = Run(cfg)
    sidecar = run.caption_shards("train") if with_vlm else None
    if sidecar is not None and not (sidecar / "sizes.json").exists():
        raise MissingArtifact(f"{sidecar}: no caption sidecar shards for the VLM captions; {CAPTIONS} writes them")
    stream = ShardStream(run.shards("train"), local, rank, world, cfg.shard_streams, cfg.num_workers, cfg.frames, seed,
                         0, start, stop, sidecar)
    return stream_loader(stream, cfg.num_workers)


def lr_lambda(cfg: Config):
    """Linear warmup, then the rate held constant or decayed to zero at `cfg.steps` (`cfg.lr_schedule`)."""
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.lr_schedule == "constant":
            return 1.0
        progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return f


def autocast(device: torch.device, mode: str):
    """The training forward's precision context (`Config.autocast`): bfloat16 autocast on CUDA by default, on any
    device when asked (the CPU then runs CUDA's code path), else float32. The losses stay float32 within it."""
    enabled = mode == "bfloat16" or (mode == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def meta_batch_size(cfg: Config, n_meta: int, world: int) -> int:
    """The global meta batch: `cfg.meta_batch_size`, or the whole meta split when it is smaller, rounded down to
    a multiple of the ranks so that every rank's slice has the same size (one process: unchanged)."""
    size = min(cfg.meta_batch_size, n_meta) // world * world
    if size == 0:
        raise ValueError(f"the meta split has {n_meta} usable row(s), fewer than the {world} ranks: every rank needs "
                         "at least one meta sample (a larger --meta-per-concept, or fewer processes)")
    return size


@dataclass
class Learner:
    """What a training step updates: the dual encoder with its optimiser and schedule, the weighting MLP with its
    optimiser, and the parameters the virtual step of the meta update moves."""

    model: DualEncoder
    trainable: list[torch.nn.Parameter]  # listed once: walking a frozen text backbone's modules every step costs ms
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    weight_net: WeightNet
    weight_opt: torch.optim.Optimizer
    virtual_params: dict[str, torch.Tensor]


def fresh_weighting(cfg: Config, device: torch.device) -> tuple[WeightNet, torch.optim.Optimizer]:
    """A new weighting MLP (every rank starts from rank 0's weights) and its optimiser."""
    weight_net = WeightNet(cfg.meta_hidden).to(device)
    dist.broadcast_params(weight_net)
    return weight_net, torch.optim.Adam(weight_net.parameters(), lr=cfg.meta_lr, weight_decay=1e-4)


def build_learner(cfg: Config, device: torch.device) -> Learner:
    """A fresh model and weighting MLP (every rank starts from rank 0's weights) with their optimisers."""
    model = build_model(cfg).to(device)
    dist.broadcast_params(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    return Learner(model, trainable, opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg)),
                   *fresh_weighting(cfg, device), select_params(model, cfg.meta_params))


def batch_losses(model: DualEncoder, params: dict | None, frames: torch.Tensor, text, loss: str, cfg: Config,
                 device: torch.device) -> torch.Tensor:
    """Per-sample losses ℓᵢ of this rank's samples (the model with `params` substituted, when given), under the
    training precision; negatives come from the whole global batch (ranks hold equal slices)."""
    with autocast(device, cfg.autocast):
        v, t = call_with(model, params, frames, text)
        return contrastive_loss(loss, v, t, cfg.margin, model.temperature(), video_all=dist.gather(v),
                                text_all=dist.gather(t), offset=dist.rank() * len(v))


def training_step(learner: Learner, spec: Method, cfg: Config, device: torch.device, frames: torch.Tensor, text,
                  step: int, meta_batch: Callable[[], tuple]) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """One training step of any method: the four steps of the module docstring (steps 1–3 every `meta_interval`
    steps for meta-weighted methods, step 4 always). `meta_batch()` gives the meta batch (frames, text) when the
    meta update runs. Returns the per-sample losses, their weights and the step's scalars."""
    meta_now = spec.meta and step % cfg.meta_interval == 0
    scalars: dict[str, float] = {}
    # One forward of the training batch serves the virtual step (differentiated twice) and the real step.
    with meta_kernels() if meta_now else nullcontext():
        losses = batch_losses(learner.model, None, frames, text, spec.loss, cfg, device)
    if meta_now:
        # Steps 1-3: virtual step on the training losses, meta loss on a meta batch, MLP update.
        mframes, mtext = meta_batch()
        alpha = cfg.virtual_lr * learner.sched.get_last_lr()[0] / cfg.lr
        scalars.update(meta_step(
            learner.model, learner.weight_net, learner.weight_opt, losses,
            lambda m, p: batch_losses(m, p, mframes, mtext, spec.loss, cfg, device),
            alpha, learner.virtual_params, sync_grads=dist.average_grads,
            normalize=cfg.normalize_weights, mean_fn=dist.mean, reduce_grads=dist.average_differentiable,
        ))
    # Step 4: the real step on the same per-sample losses, weighted by the updated MLP (weight 1 without it).
    with torch.no_grad():
        weights = (sample_weights(learner.weight_net, losses, cfg.normalize_weights, dist.mean) if spec.meta
                   else torch.ones_like(losses))
    loss = (weights * losses.float()).mean()
    learner.opt.zero_grad(set_to_none=True)
    loss.backward()
    dist.average_grads(learner.trainable)
    scalars["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(learner.trainable, cfg.grad_clip))
    learner.opt.step()
    learner.sched.step()
    scalars.update(loss=float(loss.detach()), lr=learner.sched.get_last_lr()[0],
                   temperature=float(learner.model.temperature()))
    return losses, weights, scalars


LOG_FILES = (Path("samples.csv"), Path("scalars.jsonl"))  # in logs/<run>/, appended at each checkpoint


def commit_progress(learner: Learner, ckpt: Path, logs: Path, step: int, extra: dict, samples: list[dict],
                    scalars: list[dict]) -> None:
    """What a checkpoint makes durable: the logs since the last one appended, the weighting MLP's snapshot (notebook
    04's curves), then the checkpoint itself, whose record holds the logs' lengths (a resume cuts them back)."""
    append_csv(logs / "samples.csv", samples, SAMPLE_FIELDS)
    write_scalars(logs, scalars)
    save_weights(ckpt / f"weight_net_step{step:06d}.safetensors", learner.weight_net)
    save_checkpoint(ckpt, step, learner.model, learner.opt, learner.sched, learner.weight_net, learner.weight_opt,
                    extra, logs=log_lengths([logs / f for f in LOG_FILES]))


def validate(model, data: TrainingData, cfg: Config, device) -> dict[str, float]:
    v, t, owner = embed_rows(model, data.val, data.cache, cfg, data.text_features, device)
    res = video_text_retrieval(t @ v.T, owner)
    out = {f"val/{d}/{k}": x for d, m in res.items() for k, x in m.items()}
    out["val/rsum"] = sum(res[d][k] for d in res for k in ("R@1", "R@5", "R@10"))
    return out


def plateau_watch(state: dict, rsum: float, step: int, window: int) -> dict:
    """The plateau rule's state after a validation at `step`: the last `window` validation R-sums and the best of
    their mean with the step where it was reached. A run has plateaued once that mean has not improved for
    `patience` validations: one lucky or unlucky validation (neighbouring validations differ by ±10 R-sum on the
    embedded corpus) neither ends a run nor keeps it going."""
    recent = [*state.get("recent", []), rsum][-window:]
    mean = sum(recent) / len(recent)
    better = mean > state.get("best", float("-inf")) + 1e-9  # equal values may average a rounding error higher
    return {"recent": recent, "best": mean if better else state["best"], "step": step if better else state["step"]}


@locked("mamc train")
def train(cfg: Config, method: str, seed: int | None = None, name: str | None = None, progress: bool = True,
          stop_after: int | None = None) -> dict:
    """Train one method and return its summary (also written to logs/<name>/summary.json).

    Trains for `cfg.steps` steps, or until validation plateaus: with `cfg.patience` > 0 the run ends once that
    many validations in a row (every `eval_every` steps) bring no new best of the mean R-sum of the last
    `plateau_window` validations (`plateau_watch`); the weights of the best single validation are kept.
    Resumes from the run's committed checkpoint when present; a finished run returns its summary at once.
    `stop_after` ends the process's work after that many steps of this call, as an interruption would (used to
    test exact resume). Under DDP, rank 0 writes the logs, and the per-sample log holds its slice of each batch.
    """
    spec = METHODS[method]
    seed = cfg.seed if seed is None else seed
    name = name or run_name(method, seed)
    run = Run(cfg)
    ckpt, logs = run.checkpoints(name), run.logs(name)
    record = read_record(ckpt)
    if run.path("summary", name).exists() and record is not None:
        done_before = run.read("summary", name)
        if done_before.get("completed") and (record["step"] >= cfg.steps or record["extra"].get("plateau")):
            return done_before
    device = dist.init_from_env(resolve_device(cfg.device))
    deterministic(device)
    use_threads(cfg.threads)
    rank, world = dist.rank(), dist.world_size()
    if cfg.batch_size % world or cfg.meta_batch_size % world:
        raise ValueError(f"batch sizes ({cfg.batch_size}, {cfg.meta_batch_size}) must divide by world size {world}")

    torch.manual_seed(seed)
    learner = build_learner(cfg, device)
    model, weight_net = learner.model, learner.weight_net
    data = prepare(cfg, model, spec.vlm, device, meta=spec.meta)

    start, best, watch, plateau = 0, {"val/rsum": -1.0, "step": -1}, {}, False
    if record is not None:
        load_checkpoint(ckpt, model, learner.opt, learner.sched, weight_net, learner.weight_opt)
        start, best, plateau = record["step"], record["extra"]["best"], record["extra"].get("plateau", False)
        watch = record["extra"].get("watch", {})
    if rank == 0:
        # Logs written after the checkpoint being resumed (or by a run killed before its first) are cut away.
        logs.mkdir(parents=True, exist_ok=True)
        cut_logs(logs, record.get("logs", {}) if record else dict.fromkeys((p.name for p in LOG_FILES), 0))
        if start:
            write_scalars_csv(logs)
    writer = SummaryWriter(str(logs / "tb"), purge_step=start or None) if rank == 0 else None
    mb_global = meta_batch_size(cfg, len(data.meta), world) if spec.meta else cfg.meta_batch_size
    b_local, mb_local = cfg.batch_size // world, mb_global // world

    def inputs(loaded: tuple[list[dict], torch.Tensor]):
        part, frames = loaded[0], normalize_frames(loaded[1].to(device, non_blocking=True))
        return part, frames, text_input(model, [r["caption"] for r in part], data.text_features, device)

    sample_log, scalar_log = [], []
    t0, steps_done, done, preempted = time.time(), 0, start, False
    loader = train_batches(cfg, data, spec.vlm, b_local, rank, world, seed, start, start if plateau else cfg.steps)
    meta_batches = StepBatches(data.meta, data.cache, cfg.frames, mb_global, mb_local, rank, seed, 1)
    batches = iter(loader)
    bar = tqdm(enumerate(batches, start), desc=name, disable=not progress or rank != 0, initial=start, total=cfg.steps)
    with preempt.deferred():  # SIGTERM/SIGUSR1 stop the loop at a step boundary, after a checkpoint
        try:
            for step, loaded in bar:
                part, frames, text = inputs(loaded)
                losses, weights, scalars = training_step(learner, spec, cfg, device, frames, text, step,
                                                         lambda step=step: inputs(meta_batches[step])[1:])
                scalars = {"step": step, **scalars}

                # Logging, model selection on validation, and checkpoints.
                sample_log += [{"step": step, "video_id": r["video_id"], "topic": r.get("topic"),
                                "source": r.get("source", "original"), "aligned": r.get("aligned"),
                                "loss": loss_i, "weight": w}
                               for r, loss_i, w in zip(part, losses.detach().float().tolist(), weights.float().tolist())]
                steps_done += 1
                done = step + 1
                evaluated = done % cfg.eval_every == 0 or done == cfg.steps
                if rank == 0 and evaluated:
                    scalars.update(validate(model, data, cfg, device))
                    if scalars["val/rsum"] > best["val/rsum"]:
                        best = {"val/rsum": scalars["val/rsum"], "step": done,
                                **{k: v for k, v in scalars.items() if k.startswith("val/")}}
                        save_weights(run.path("best", name), model)
                        if spec.meta:
                            save_weights(run.path("best weight net", name), weight_net)
                    # The plateau: `patience` validations in a row without a new best of the recent mean end the run.
                    watch = plateau_watch(watch, scalars["val/rsum"], done, cfg.plateau_window)
                    plateau = cfg.patience > 0 and done - watch["step"] >= cfg.patience * cfg.eval_every
                    bar.set_postfix(val_rsum=f"{scalars['val/rsum']:.1f}", loss=f"{scalars['loss']:.3f}")
                if evaluated:
                    plateau = dist.from_rank0(plateau)
                preempted = dist.from_rank0(preempt.asked())  # rank 0's word, so that every rank stops at this step
                scalar_log.append(scalars)
                if writer is not None:
                    for k, v in scalars.items():
                        if k != "step":
                            writer.add_scalar(k, v, step)
                if (done % cfg.ckpt_every == 0 or done == cfg.steps or plateau or preempted
                        or (stop_after is not None and steps_done >= stop_after)):
                    if rank == 0:
                        commit_progress(learner, ckpt, logs, done, {"best": best, "watch": watch, "plateau": plateau},
                                        sample_log, scalar_log)
                    sample_log, scalar_log = [], []
                if plateau or preempted:
                    break
                if stop_after is not None and steps_done >= stop_after:
                    break
        finally:
            # Worker processes end now, not whenever the iterator is collected: after an interruption in a kernel the
            # traceback keeps it alive, and `num_workers` idle workers would linger. (torch has no public call for this;
            # it is what the iterator's own __del__ runs.)
            bar.close()
            getattr(batches, "_shutdown_workers", lambda: None)()
    if writer is not None:
        writer.close()
    if preempted and not plateau and done < cfg.steps:
        dist.barrier()
        raise preempt.Preempted(f"{name}: checkpoint committed at step {done} on a preemption signal; the same command "
                                "resumes it")
    wall = time.time() - t0
    summary = {"name": name, "method": method, "seed": seed, "steps": cfg.steps, "last_step": done, "plateau": plateau,
               "completed": done >= cfg.steps or plateau, "best": best, "sec_per_step": wall / max(steps_done, 1),
               "world_size": world, "device": str(device), "backend": dist.backend(),
               "margin": cfg.margin if spec.loss != "infonce" else 0.0, "loss": spec.loss, "meta": spec.meta, "vlm": spec.vlm,
               "knobs": knob_sources(cfg, method),
               **({"meta_lr": cfg.meta_lr, "meta_interval": cfg.meta_interval} if spec.meta else {})}
    if rank == 0:
        write_json(run.path("summary", name), summary)
    dist.barrier()  # every rank returns once the summary is there (tuning reads the summaries next)
    return summary


def meta_step_by_hand(cfg: Config, run: str, batch_size: int = 64, steps: int = 1,
                      seed: int = 0) -> tuple[pd.DataFrame, list[dict]]:
    """`steps` bi-level steps of `mamc.meta.meta_step` on one training batch and one meta batch, starting from
    run `run`'s selected model and a fresh weighting MLP (the model itself is not updated): what notebook 03
    shows. Returns one row per training pair — its kind (clean or misaligned, head or tail topic), its loss,
    and its normalised weight before and after — and the meta loss of every step."""
    device = resolve_device(cfg.device)
    use_threads(cfg.threads)
    torch.manual_seed(seed)
    model = load_trained(cfg, run).train()
    data = prepare(cfg, model, with_vlm=False, device=device)
    weight_net, weight_opt = fresh_weighting(cfg, device)

    def batch(rows: list[dict], stream: int):
        part, frames = StepBatches(rows, data.cache, cfg.frames, batch_size, batch_size, 0, seed, stream)[0]
        text = text_input(model, [r["caption"] for r in part], data.text_features, device)
        return part, normalize_frames(frames.to(device)), text

    (part, frames, text), (_, mframes, mtext) = batch(data.train, 0), batch(data.meta, 1)

    def losses_of(m, params, f, t):
        return batch_losses(m, params, f, t, "infonce", cfg, device)

    with meta_kernels():
        losses = losses_of(model, None, frames, text)
    with torch.no_grad():
        before = sample_weights(weight_net, losses, cfg.normalize_weights)
    stats = [meta_step(model, weight_net, weight_opt, losses, lambda m, p: losses_of(m, p, mframes, mtext), cfg.virtual_lr,
                       select_params(model, cfg.meta_params), normalize=cfg.normalize_weights) for _ in range(steps)]
    with torch.no_grad():
        after = sample_weights(weight_net, losses, cfg.normalize_weights)
    groups = topic_groups(cfg)
    table = pd.DataFrame({
        "video_id": [r["video_id"] for r in part], "pair": ["clean" if r.get("aligned", True) else "misaligned" for r in part],
        "topic": [groups.get(r.get("topic"), "?") for r in part], "loss": losses.detach().cpu().numpy(),
        "weight before": before.cpu().numpy(), "weight after": after.cpu().numpy()})
    return table.assign(change=table["weight after"] - table["weight before"]), stats
