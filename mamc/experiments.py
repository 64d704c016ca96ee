"""The experiments of notebooks 03 and 05: the ablation over methods and seeds, the margin sweep, and the
test-set evaluation of every trained run. Every result is a JSON file in the run's logs folder, so that tables
and figures can be rebuilt from saved artifacts alone."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd

from mamc.config import Config
from mamc.evaluate import gt_ranks, video_text_retrieval
from mamc.manifest import write_json
from mamc.pipeline import ensure_frames, frame_cache_dir, load_rows, log_dir, require, resolve_device
from mamc.qa import train_and_evaluate_qa
from mamc.train import embed_rows, frozen_text_features, load_trained, run_name, train


def sweep_name(cfg: Config, margin: float) -> str:
    """Run of the margin sweep at `margin` (first seed). m = 0 is InfoNCE exactly and m = cfg.margin is the
    ablation's margin run, so those two reuse the ablation's runs instead of training twice."""
    seed = cfg.seeds[0]
    if margin == 0 and "infonce" in cfg.methods:
        return run_name("infonce", seed)
    if margin == cfg.margin and "margin" in cfg.methods:
        return run_name("margin", seed)
    return run_name("margin", seed, margin)


def run_ablation(cfg: Config, progress: bool = True) -> list[dict]:
    """Train every method of `cfg.methods` for every seed of `cfg.seeds` (finished runs are skipped)."""
    return [train(cfg, m, seed, progress=progress) for seed in cfg.seeds for m in cfg.methods]


def run_margin_sweep(cfg: Config, progress: bool = True) -> list[dict]:
    """Subtractive-margin training at each margin of `cfg.margin_sweep` (first seed)."""
    seed = cfg.seeds[0]
    return [train(replace(cfg, margin=m), "margin", seed, name=sweep_name(cfg, m), progress=progress)
            for m in cfg.margin_sweep if sweep_name(cfg, m) == run_name("margin", seed, m)]


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
    feats = frozen_text_features(model, [r["caption"] for r in rows], cfg, device)
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


def _evaluated(cfg: Config, name: str) -> bool:
    """Whether test.json exists for the run's current best checkpoint (so evaluation can be skipped)."""
    test, summary = log_dir(cfg, name) / "test.json", log_dir(cfg, name) / "summary.json"
    return test.exists() and json.loads(test.read_text()).get("best_step") == json.loads(summary.read_text())["best"]["step"]


def evaluate_all(cfg: Config, qa: bool = True, progress: bool = False, skip_done: bool = True) -> list[dict]:
    """Evaluate every finished run of the ablation and the sweep on test (and QA for the ablation's runs).

    Test metrics are computed once per selected checkpoint; with `skip_done` they are read back after that.
    """
    results = []
    names = [(cfg, run_name(m, s), m, s) for s in cfg.seeds for m in cfg.methods]
    names += [(replace(cfg, margin=m), sweep_name(cfg, m), None, None) for m in cfg.margin_sweep]
    first = {}
    for entry in names:
        first.setdefault(entry[1], entry)
    for run_cfg, name, method, seed in first.values():
        if skip_done and _evaluated(run_cfg, name):
            results.append(json.loads((log_dir(run_cfg, name) / "test.json").read_text()))
        else:
            results.append(evaluate_test(run_cfg, name))
        if qa and method is not None:
            train_and_evaluate_qa(cfg, name, method, seed, progress)
    return results


def training_log(cfg: Config) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Summaries (one row per ablation run) and scalars (one row per run and step) of the trained runs."""
    names = [run_name(m, s) for s in cfg.seeds for m in cfg.methods]
    summaries, scalars = [], []
    for name in names:
        logs = log_dir(cfg, name)
        s = json.loads(require(logs / "summary.json", "notebook 03 or `mamc train`").read_text())
        summaries.append({"run": name, "method": s["method"], "seed": s["seed"], "best step": s["best"]["step"],
                          "val rsum": s["best"]["val/rsum"], "val t2v R@1": s["best"].get("val/t2v/R@1"),
                          "s/step": s["sec_per_step"]})
        part = pd.read_json(logs / "scalars.jsonl", lines=True)
        scalars.append(part.assign(run=name))
    return pd.DataFrame(summaries), pd.concat(scalars, ignore_index=True)
