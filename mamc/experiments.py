"""The experiments of notebooks 03 and 05 and of `mamc train --method ablation` / `mamc evaluate`: the
ablation over methods and seeds, the margin sweep, and the test-set evaluation of every trained run. Every
result is a JSON file in the run's logs folder, so that tables and figures can be rebuilt from saved artifacts
alone."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mamc.config import Config
from mamc.data.loaders import usable_rows
from mamc.data.prepare import ensure_frames, load_rows
from mamc.embed import embed_rows, frozen_text_features
from mamc.evaluate import gt_ranks, video_text_retrieval, video_to_text_ranks
from mamc.manifest import write_json
from mamc.models import add_text_features, frozen_text_backbone, missing_texts, resolve_text_model
from mamc.pool import in_parallel, worker_pool
from mamc.qa import train_and_evaluate_qa
from mamc.run import Run, resolve_device, use_threads
from mamc.runs import (
    METHODS,
    ablation_name,
    ablation_runs,
    chosen_values,
    dose_runs,
    is_evaluated,
    knobs_of,
    load_trained,
    method_config,
    run_name,
    sweep_runs,
    topic_groups,
    tuning_runs,
)
from mamc.train import train


@dataclass(frozen=True)
class TrainJob:
    """One training run to schedule: its configuration (knobs set), method, seed and name."""

    cfg: Config
    method: str
    seed: int
    name: str
    progress: bool


def _train_job(job: TrainJob) -> dict:
    return train(job.cfg, job.method, job.seed, name=job.name, progress=job.progress)


def _test_job(job: tuple[Config, str]) -> dict:
    return evaluate_test(*job)


def _qa_job(job: TrainJob) -> dict:
    return train_and_evaluate_qa(job.cfg, job.name, job.method, job.seed)


def _encode_captions_once(cfg: Config, jobs: list[TrainJob], pool) -> None:
    """The frozen text features of every caption set the jobs read, encoded before any job starts (each text
    once, rather than once by every worker that finds it missing at the same moment), by the workers of `pool`
    side by side: a text's feature does not depend on the texts encoded beside it."""
    if not cfg.freeze_text:
        return
    sets = {(METHODS[job.method].vlm, job.cfg.captioner_snapshot): job.cfg for job in jobs}
    texts = {r["caption"] for (vlm, _), run_cfg in sets.items() for r in load_rows(run_cfg, with_vlm=vlm)}
    model_id, store = resolve_text_model(cfg.text_model), Run(cfg).text_cache
    missing = missing_texts(model_id, texts, store)
    parts = [part for part in (missing[i :: max(cfg.parallel_runs, 1)] for i in range(max(cfg.parallel_runs, 1))) if part]
    features = in_parallel(cfg, _encode_job, [(cfg, part) for part in parts], "encode captions", False, pool=pool)
    if parts:
        add_text_features(model_id, store, {t: f for part, feats in zip(parts, features) for t, f in zip(part, feats)})


def _encode_job(job: tuple) -> torch.Tensor:
    cfg, texts = job
    use_threads(cfg.threads)
    device = resolve_device(cfg.device)
    return frozen_text_backbone(resolve_text_model(cfg.text_model)).to(device).encode(texts, device=device).cpu()


def _longest_first(jobs: list[TrainJob]) -> list[TrainJob]:
    """Meta-weighted runs first, so that the pool does not end waiting on one long run; duplicates dropped."""
    unique = list({job.name: job for job in jobs}.values())
    return sorted(unique, key=lambda job: not METHODS[job.method].meta)


def run_experiments(cfg: Config, methods: list[str] | None = None, seeds: list[int] | None = None, sweep: bool = True,
                    progress: bool = True) -> list[dict]:
    """Tune each method's knob on validation, then train the ablation — every seed (or `seeds`) of each method of
    `cfg.methods` that is in `methods` (None: all) — and, with `sweep`, the margin sweep. Finished runs are
    skipped; the first seed's run at a chosen value is its tuning run. Returns the training summaries."""
    inline = cfg.parallel_runs <= 1 and progress
    wanted = [m for m in cfg.methods if methods is None or m in methods]
    seeds = list(cfg.seeds if seeds is None else seeds)
    # The tuning runs first, with the runs that need no tuning beside them (both cores busy meanwhile).
    first = [TrainJob(run_cfg, m, cfg.seeds[0], name, inline) for name, m, run_cfg in tuning_runs(cfg, wanted)]
    first += [TrainJob(cfg, m, s, run_name(m, s), inline) for m in wanted if not knobs_of(m) for s in seeds]
    if sweep:
        first += [TrainJob(run_cfg, "infonce" if run_cfg.margin == 0 else "margin", cfg.seeds[0], name, inline)
                  for name, run_cfg in sweep_runs(cfg)]
    if "vlm" in wanted:
        first += [TrainJob(run_cfg, "vlm", s, name, inline) for name, s, run_cfg in dose_runs(cfg) if s in seeds]
    first = _longest_first(first)
    tuning = {name for name, _, _ in tuning_runs(cfg, wanted)}

    def tuned() -> list[TrainJob]:
        """The seeds of the methods with knobs, at the values their tuning runs chose (or the values set)."""
        chosen = chosen_values(cfg, wanted) if any(knobs_of(m) for m in wanted) else {}
        trained = {job.name for job in first}
        then = [TrainJob(method_config(cfg, m, chosen), m, s, ablation_name(cfg, m, s, chosen), inline)
                for m in wanted if knobs_of(m) for s in seeds]
        return _longest_first([job for job in then if job.name not in trained])

    with worker_pool(cfg, "train") as pool:
        _encode_captions_once(cfg, first, pool)
        return in_parallel(cfg, _train_job, first, "train", progress,
                           then=({i for i, job in enumerate(first) if job.name in tuning}, tuned), pool=pool)


def evaluate_test(cfg: Config, name: str) -> dict:
    """Test retrieval of the run's best-on-val checkpoint: both directions, DSL variant, per topic, head/tail, and
    every query's rank."""
    run = Run(cfg)
    listed = load_rows(cfg, "test")
    ensure_frames(cfg, listed)
    rows = usable_rows(listed, run.frame_cache)
    if not rows:
        raise ValueError(f"{run.path('manifest')}: no usable 'test' rows ({len(listed)} listed; undecodable videos are in "
                         f"{run.frame_cache / 'failures.jsonl'})")
    use_threads(cfg.threads)
    model = load_trained(cfg, name)
    device = resolve_device(cfg.device)
    feats = frozen_text_features(model, [r["caption"] for r in rows], run.text_cache, device)
    v, t, owner = embed_rows(model, rows, run.frame_cache, cfg, feats, device)
    sim = t @ v.T
    out = video_text_retrieval(sim, owner)
    out["dsl"] = video_text_retrieval(sim, owner, dsl=True)
    ranks = gt_ranks(sim, owner)
    # Every query's rank is kept, so that each reported figure can be recomputed from this file alone (the audit).
    out["ranks"] = {"query_video_ids": [r["video_id"] for r in rows], "t2v": ranks.tolist(),
                    "v2t": video_to_text_ranks(sim, owner).tolist()}
    topics = np.array([r.get("topic") for r in rows])
    out["per_topic_t2v_R@1"] = {str(k): float(np.mean(ranks[topics == k] <= 1) * 100) for k in sorted(set(topics.tolist()))}
    groups = topic_groups(cfg)
    for g in ("head", "tail"):
        mask = np.array([groups.get(k) == g for k in topics])
        out[f"{g}_t2v_R@1"] = float(np.mean(ranks[mask] <= 1) * 100) if mask.any() else float("nan")
    summary = run.read("summary", name)
    out.update(name=name, method=summary["method"], seed=summary["seed"], margin=summary["margin"],
               n_test=len(rows), n_test_videos=len(v), n_test_unusable=len(listed) - len(rows),
               best_step=summary["best"]["step"])
    write_json(run.path("test", name), out)
    return out


def evaluate_all(cfg: Config, qa: bool = True, progress: bool = False, skip_done: bool = True) -> list[dict]:
    """Evaluate every finished run of the ablation and the sweep on test (and QA for the ablation's runs, when
    asked and the run has a QA benchmark: `qa_dataset` "" means none, e.g. DiDeMo alone).

    Test metrics are computed once per selected checkpoint; with `skip_done` they are read back after that.
    """
    chosen = chosen_values(cfg)
    ablation = {name: TrainJob(method_config(cfg, method, chosen), method, seed, name, False)
                for name, method, seed in ablation_runs(cfg)}
    configs = {name: job.cfg for name, job in ablation.items()}
    for name, run_cfg in [*sweep_runs(cfg), *((name, run_cfg) for name, _, run_cfg in dose_runs(cfg))]:
        configs.setdefault(name, run_cfg)
    todo = [(run_cfg, name) for name, run_cfg in configs.items() if not (skip_done and is_evaluated(run_cfg, name))]
    in_parallel(cfg, _test_job, todo, "test", progress)
    results = [Run(run_cfg).read("test", name) for name, run_cfg in configs.items()]
    if qa and cfg.qa_dataset:
        in_parallel(cfg, _qa_job, list(ablation.values()), "qa", progress)
    return results
