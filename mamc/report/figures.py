"""Every figure of the paper and of the notebooks, rebuilt from a run folder's saved artifacts (no training):
`mamc figures --run DIR` builds them all, and each notebook builds and shows the ones of its step. A figure
whose inputs this run does not have (no captions, no MAMA run) is skipped; one whose inputs should exist
raises `MissingArtifact` naming the notebook or command that makes them."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mamc.config import Config
from mamc.data.prepare import load_rows
from mamc.manifest import write_json
from mamc.report import plots
from mamc.report.tables import aggregate, captioner_accuracy, dose_response, run_results
from mamc.run import TRAIN, MissingArtifact, Run
from mamc.runs import (
    ablation_name,
    curve_values,
    sweep_runs,
    topic_groups,
    training_log,
    weight_net_snapshots,
    weighted_method,
    weighted_samples,
)
from mamc.topics import top_words_by_true_topic


def weight_curve_data(cfg: Config, name: str, n_points: int = 200) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Loss grid spanning the losses seen in training, and the curve at every saved checkpoint."""
    snaps = weight_net_snapshots(cfg, name)
    if not snaps:
        raise MissingArtifact(f"no weighting-MLP snapshots for run {name}: run {TRAIN}")
    samples = pd.read_csv(Run(cfg).need("samples", name), usecols=["loss"])
    grid = np.linspace(0, float(samples["loss"].quantile(0.995)) * 1.1, n_points)
    return grid, {step: curve_values(net, grid) for step, net in snaps.items()}


def per_topic_improvement(cfg: Config, method: str = "mama", baseline: str = "infonce") -> dict[str, float]:
    """Per-topic test t2v R@1 of `method` minus `baseline`, averaged over seeds (points)."""
    run, diffs = Run(cfg), {}
    for seed in cfg.seeds:
        a, b = run.read("test", ablation_name(cfg, method, seed)), run.read("test", ablation_name(cfg, baseline, seed))
        for topic, value in a["per_topic_t2v_R@1"].items():
            diffs.setdefault(topic, []).append(value - b["per_topic_t2v_R@1"][topic])
    return {t: float(np.mean(v)) for t, v in diffs.items()}


def topic_shares_and_words(cfg: Config) -> tuple[dict[str, float], dict[str, list[str]]]:
    """Each topic's share of the training split and its most characteristic caption words."""
    train_rows = load_rows(cfg, "train")
    counts = pd.Series([r["topic"] for r in train_rows]).value_counts()
    share = (counts / counts.sum()).to_dict()
    return share, top_words_by_true_topic([r["caption"] for r in train_rows], [r["topic"] for r in train_rows])


# ---- one function per figure: the run's configuration in, a Figure (or None: not for this run) out ---------

def _topic_distribution(cfg: Config):
    return plots.topic_distribution(Run(cfg).read("corpus")["splits"]["train"]["topics"], topic_groups(cfg))


def _loss_geometry(cfg: Config):
    return plots.logit_geometry([0.0, 0.1, 0.3, 0.5], additive=0.3)


def _caption_accuracy(cfg: Config):
    table = captioner_accuracy(cfg)
    return None if table.empty else plots.attribute_accuracy(table.set_index("captions").T.drop("all"))


def _captioner_training(cfg: Config):
    path = Run(cfg).path("captioner") / "training.json"
    if not path.exists():
        return None
    info = json.loads(path.read_text())
    stages = {("1 · vision tower", "attribute cross-entropy"): info.get("vision_losses"),
              ("2 · captioner, tower frozen", "caption cross-entropy"): info["losses"]}
    stages = {k: v for k, v in stages.items() if v}
    fig, axes = plt.subplots(1, len(stages), figsize=(3.35 * len(stages), 2.2), squeeze=False, layout="constrained")
    for ax, ((title, loss), losses) in zip(axes[0], stages.items()):
        ax.plot(losses)
        ax.set(xlabel="step", ylabel=loss, title=title)
    fig.suptitle(f"{info['parameters']:,} parameters, {info['n_pairs']} clips of its own corpus", fontsize=8)
    return fig


def _caption_examples(cfg: Config, n: int = 4):
    """Keyframe grids of the first captioned training videos with their VLM, original and true captions."""
    from mamc.caption.grid import grid_for_video

    if not Run(cfg).caption_files():
        return None
    vlm = {r["video_id"]: r["caption"] for r in load_rows(cfg, "train", with_vlm=True) if r.get("source") == "vlm"}
    shown = [r for r in load_rows(cfg, "train") if r["video_id"] in vlm][:n]
    return plots.grids_with_captions([grid_for_video(cfg.data_dir / r["video"], cfg) for r in shown],
                                     [(vlm[r["video_id"]], r["caption"], r.get("true_caption", "")) for r in shown],
                                     ["VLM", "original", "truth"])


def _real_clip_captions(cfg: Config):
    from mamc.caption.grid import grid_for_video

    path = Run(cfg).path("real clip captions")
    if not path.exists():
        return None
    rows = [r for r in json.loads(path.read_text()) if Path(r["clip"]).exists()]
    return plots.grids_with_captions([grid_for_video(r["clip"], cfg) for r in rows],
                                     [(Path(r["clip"]).name, r["caption"]) for r in rows], ["clip", "caption"]) if rows else None


def _training_curves(cfg: Config):
    return plots.training_curves(training_log(cfg)[1])


def _weight_curves(cfg: Config):
    name = ablation_name(cfg, weighted_method(cfg), cfg.seeds[0])
    grid, curves = weight_curve_data(cfg, name)
    write_json(Run(cfg).figures / "weight_curves.json",
               {"run": name, "loss": grid.tolist(), "curves": {str(k): v.tolist() for k, v in curves.items()}})
    return plots.weight_curves(grid, curves)


def _loss_weight_distributions(cfg: Config):
    return plots.loss_weight_distributions(weighted_samples(cfg, ablation_name(cfg, weighted_method(cfg), cfg.seeds[0])))


def _topic_improvement(cfg: Config):
    if not {"mama", "infonce"} <= set(cfg.methods):
        return None
    share, words = topic_shares_and_words(cfg)
    return plots.topic_figure(share, words, per_topic_improvement(cfg))


def _improvement_vs_frequency(cfg: Config):
    if not {"mama", "infonce"} <= set(cfg.methods):
        return None
    topics = Run(cfg).read("corpus")["splits"]["train"]["topics"]
    return plots.improvement_vs_frequency(topics, per_topic_improvement(cfg))


def _margin_sweep(cfg: Config):
    run = Run(cfg)
    values = [run.read("test", name)["t2v"]["R@1"] for name, _ in sweep_runs(cfg)]
    return plots.margin_sweep(list(cfg.margin_sweep), values)


def _methods_t2v_r1(cfg: Config):
    return plots.method_bars(aggregate(run_results(cfg), ["t2v R@1"]), "test t2v R@1 (%)")


def _dose_response(cfg: Config):
    table = dose_response(cfg)
    return None if table.empty else plots.dose_response(table)


FIGURES: dict[str, Callable[[Config], object]] = {
    "topic_distribution": _topic_distribution, "loss_geometry": _loss_geometry,
    "captioner_training": _captioner_training, "caption_accuracy": _caption_accuracy,
    "caption_examples": _caption_examples, "real_clip_captions": _real_clip_captions,
    "training_curves": _training_curves, "weight_curves": _weight_curves,
    "loss_weight_distributions": _loss_weight_distributions, "topic_improvement": _topic_improvement,
    "improvement_vs_frequency": _improvement_vs_frequency, "margin_sweep": _margin_sweep,
    "methods_t2v_r1": _methods_t2v_r1, "dose_response": _dose_response,
}


def build_figures(cfg: Config, names: list[str] | tuple[str, ...] | None = None, close: bool = True) -> dict[str, list[Path]]:
    """Write the named figures (default: all) to `figures/` as PDF + 300-dpi PNG; returns the paths by name,
    leaving out figures that do not apply to this run."""
    unknown = set(names or ()) - set(FIGURES)
    if unknown:
        raise ValueError(f"unknown figure(s) {sorted(unknown)}; known: {', '.join(FIGURES)}")
    made: dict[str, list[Path]] = {}
    for name in names or FIGURES:
        fig = FIGURES[name](cfg)
        if fig is None:
            continue
        made[name] = plots.save_figure(fig, Run(cfg).figures, name)
        if close:
            plt.close(fig)
    return made
