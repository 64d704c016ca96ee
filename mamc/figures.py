"""Every figure of the paper and of the notebooks, rebuilt from a run folder's saved artifacts (no training):
`mamc figures --run DIR` and notebook 04 call `build_figures`."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from mamc import plots
from mamc.config import Config
from mamc.experiments import sweep_name, topic_groups
from mamc.manifest import write_json
from mamc.meta import WeightNet
from mamc.pipeline import MissingArtifact, load_rows, log_dir, require
from mamc.topics import top_words_by_true_topic
from mamc.train import run_name, weight_net_snapshots

TRAIN = "notebook 03 or `mamc train`"
EVALUATE = "notebook 05 or `mamc evaluate`"


def weighted_method(cfg: Config) -> str:
    """The method whose weighting MLP the figures show: full MAMA when it was trained, else plain meta."""
    for method in ("mama", "meta"):
        if method in cfg.methods:
            return method
    raise MissingArtifact(f"no meta-weighted method among {cfg.methods}: add mama or meta and run {TRAIN}")


def curve_values(net: WeightNet, loss_grid: np.ndarray) -> np.ndarray:
    """The MLP evaluated on a grid of loss values (unnormalised weights in (0, 1))."""
    with torch.no_grad():
        return net(torch.as_tensor(loss_grid, dtype=torch.float32)).numpy()


def weight_curve_data(cfg: Config, name: str, n_points: int = 200) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Loss grid spanning the losses seen in training, and the curve at every saved checkpoint."""
    snaps = weight_net_snapshots(cfg, name)
    if not snaps:
        raise MissingArtifact(f"no weighting-MLP snapshots for run {name}: run {TRAIN}")
    samples = pd.read_csv(require(log_dir(cfg, name) / "samples.csv", TRAIN), usecols=["loss"])
    grid = np.linspace(0, float(samples["loss"].quantile(0.995)) * 1.1, n_points)
    return grid, {step: curve_values(net, grid) for step, net in snaps.items()}


def per_topic_improvement(cfg: Config, method: str = "mama", baseline: str = "infonce") -> dict[str, float]:
    """Per-topic test t2v R@1 of `method` minus `baseline`, averaged over seeds (points)."""
    diffs: dict[str, list[float]] = {}
    for seed in cfg.seeds:
        a = json.loads(require(log_dir(cfg, run_name(method, seed)) / "test.json", EVALUATE).read_text())
        b = json.loads(require(log_dir(cfg, run_name(baseline, seed)) / "test.json", EVALUATE).read_text())
        for topic, value in a["per_topic_t2v_R@1"].items():
            diffs.setdefault(topic, []).append(value - b["per_topic_t2v_R@1"][topic])
    return {t: float(np.mean(v)) for t, v in diffs.items()}


def topic_shares_and_words(cfg: Config) -> tuple[dict[str, float], dict[str, list[str]]]:
    """Each topic's share of the training split and its most characteristic caption words."""
    train_rows = load_rows(cfg, "train")
    counts = pd.Series([r["topic"] for r in train_rows]).value_counts()
    share = (counts / counts.sum()).to_dict()
    return share, top_words_by_true_topic([r["caption"] for r in train_rows], [r["topic"] for r in train_rows])


def samples_with_groups(cfg: Config, name: str, last_fraction: float = 0.5) -> pd.DataFrame:
    """Per-sample logs of the last part of training, with head/tail group of each topic."""
    df = pd.read_csv(require(log_dir(cfg, name) / "samples.csv", TRAIN))
    df = df[df["step"] >= df["step"].max() * (1 - last_fraction)]
    groups = topic_groups(cfg)
    df = df.assign(group=df["topic"].map(groups), aligned=df["aligned"].astype(str).str.lower() == "true")
    return df


def build_figures(cfg: Config, close: bool = True) -> dict[str, list[Path]]:
    """Write every figure to `figures/` (PDF + 300-dpi PNG); returns the paths by figure name."""
    out = cfg.run_path / "figures"
    made: dict[str, list[Path]] = {}

    def emit(name: str, fig) -> None:
        made[name] = plots.save_figure(fig, out, name)
        if close:
            plt.close(fig)

    corpus = json.loads(require(cfg.data_dir / "corpus.json", "notebook 01 or `mamc synth`").read_text())
    train_topics = corpus["splits"]["train"]["topics"]
    groups = topic_groups(cfg)
    emit("topic_distribution", plots.topic_distribution(train_topics, groups))
    emit("loss_geometry", plots.logit_geometry([0.0, 0.1, 0.3, 0.5], additive=0.3))

    weighted = run_name(weighted_method(cfg), cfg.seeds[0])
    grid, curves = weight_curve_data(cfg, weighted)
    write_json(out / "weight_curves.json", {"run": weighted, "loss": grid.tolist(), "curves": {str(k): v.tolist() for k, v in curves.items()}})
    emit("weight_curves", plots.weight_curves(grid, curves))
    emit("loss_weight_distributions", plots.loss_weight_distributions(samples_with_groups(cfg, weighted)))

    if "mama" in cfg.methods and "infonce" in cfg.methods:
        improvement = per_topic_improvement(cfg)
        share, words = topic_shares_and_words(cfg)
        emit("topic_improvement", plots.topic_figure(share, words, improvement))
        emit("improvement_vs_frequency", plots.improvement_vs_frequency(train_topics, improvement))

    sweep = [json.loads(require(log_dir(cfg, sweep_name(cfg, m)) / "test.json", EVALUATE).read_text())
             for m in cfg.margin_sweep]
    emit("margin_sweep", plots.margin_sweep(list(cfg.margin_sweep), [s["t2v"]["R@1"] for s in sweep]))

    from mamc.tables import aggregate, run_results

    agg = aggregate(run_results(cfg), ["t2v R@1"])
    emit("methods_t2v_r1", plots.method_bars(agg, "test t2v R@1 (%)"))
    return made

