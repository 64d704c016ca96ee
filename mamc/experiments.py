"""The experiments of notebooks 03 and 05: the ablation over methods and seeds, the margin sweep, and the
test-set evaluation of every trained run. Every result is a JSON file in the run's logs folder, so that tables
and figures can be rebuilt from saved artifacts alone."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from mamc.config import Config
from mamc.evaluate import gt_ranks, video_text_retrieval
from mamc.manifest import write_json
from mamc.pipeline import ensure_frames, frame_cache_dir, load_rows, log_dir, require, resolve_device
from mamc.qa import train_and_evaluate_qa
from mamc.train import embed_rows, load_trained, run_name, train


def sweep_name(seed: int, margin: float) -> str:
    return run_name("margin", seed, margin)


def run_ablation(cfg: Config, progress: bool = True) -> list[dict]:
    """Train every method of `cfg.methods` for every seed of `cfg.seeds` (finished runs are skipped)."""
    return [train(cfg, m, seed, progress=progress) for seed in cfg.seeds for m in cfg.methods]


def run_margin_sweep(cfg: Config, progress: bool = True) -> list[dict]:
    """Subtractive-margin training at each margin of `cfg.margin_sweep` (first seed)."""
    seed = cfg.seeds[0]
    return [train(replace(cfg, margin=m), "margin", seed, name=sweep_name(seed, m), progress=progress)
            for m in cfg.margin_sweep]


def topic_groups(cfg: Config) -> dict[str, str]:
    """"head" for the most frequent training topics holding half the topics, "tail" for the rest."""
    stats = json.loads(require(cfg.data_dir / "corpus.json", "notebook 01 or `mamc synth`").read_text())
    ranked = list(stats["splits"]["train"]["topics"])
    ranked += [t for t in stats["splits"]["test"]["topics"] if t not in ranked]
    half = len(ranked) // 2
    return {t: ("head" if i < half else "tail") for i, t in enumerate(ranked)}


def evaluate_test(cfg: Config, name: str) -> dict:
    """Test retrieval of the run's best-on-val checkpoint: both directions, DSL variant, per topic, head/tail."""
    rows = load_rows(cfg, "test")
    ensure_frames(cfg, rows)
    model = load_trained(cfg, name)
    device = resolve_device(cfg.device)
    feats = None
    if model.freeze_text:
        from mamc.models import text_feature_cache
        from mamc.pipeline import text_cache_dir

        feats = text_feature_cache(model.text, [r["caption"] for r in rows], text_cache_dir(cfg), device)
    v, t = embed_rows(model, rows, frame_cache_dir(cfg), cfg, feats, device)
    sim = t @ v.T
    out = video_text_retrieval(sim)
    out["dsl"] = video_text_retrieval(sim, dsl=True)
    ranks = gt_ranks(sim)
    topics = np.array([r.get("topic") for r in rows])
    out["per_topic_t2v_R@1"] = {str(k): float(np.mean(ranks[topics == k] <= 1) * 100) for k in sorted(set(topics.tolist()))}
    groups = topic_groups(cfg)
    for g in ("head", "tail"):
        mask = np.array([groups.get(k) == g for k in topics])
        out[f"{g}_t2v_R@1"] = float(np.mean(ranks[mask] <= 1) * 100) if mask.any() else float("nan")
    summary = json.loads((log_dir(cfg, name) / "summary.json").read_text())
    out.update(name=name, method=summary["method"], seed=summary["seed"], margin=summary["margin"],
               n_test=len(rows), best_step=summary["best"]["step"])
    write_json(log_dir(cfg, name) / "test.json", out)
    return out


def evaluate_all(cfg: Config, qa: bool = True, progress: bool = False) -> list[dict]:
    """Evaluate every finished run of the ablation and the sweep on test (and QA for the ablation's runs)."""
    results = []
    for seed in cfg.seeds:
        for method in cfg.methods:
            name = run_name(method, seed)
            results.append(evaluate_test(cfg, name))
            if qa:
                train_and_evaluate_qa(cfg, name, method, seed, progress)
    for m in cfg.margin_sweep:
        results.append(evaluate_test(replace(cfg, margin=m), sweep_name(cfg.seeds[0], m)))
    return results
