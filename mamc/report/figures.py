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
from PIL import Image

from mamc.config import Config
from mamc.data.card import examples
from mamc.data.prepare import load_rows
from mamc.manifest import write_json
from mamc.report import plots, style
from mamc.report.tables import captioner_accuracy, dose_response, run_results
from mamc.run import TRAIN, MissingArtifact, Run
from mamc.runs import (
    ablation_name,
    curve_values,
    method_config,
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


def per_topic_gains(cfg: Config, method: str = "mama", baseline: str = "infonce") -> dict[str, list[float]]:
    """Per topic, the test t2v R@1 of `method` minus `baseline` in each seed (points), paired by seed."""
    run, diffs = Run(cfg), {}
    for seed in cfg.seeds:
        a, b = run.read("test", ablation_name(cfg, method, seed)), run.read("test", ablation_name(cfg, baseline, seed))
        for topic, value in a["per_topic_t2v_R@1"].items():
            diffs.setdefault(topic, []).append(value - b["per_topic_t2v_R@1"][topic])
    return diffs


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
    fig, axes = style.figure(style.PAGE if len(stages) > 1 else style.COLUMN, 2.3, ncols=len(stages), squeeze=False)
    for ax, ((title, loss), losses) in zip(axes[0], stages.items()):
        ax.plot(range(1, len(losses) + 1), losses, lw=0.8, color=style.method_color("vlm"))
        ax.set(xlabel="training step", ylabel=f"{loss} (nats)")
        ax.set_title(title, loc="left")
    style.note(fig, f"The embedded captioner: {info['parameters']:,} parameters, trained on {info['n_pairs']} clips of "
                    "its own corpus; loss of each training batch.")
    return fig


def _caption_examples(cfg: Config, n: int = 4):
    """Keyframe grids of captioned training videos with their VLM, original and true captions: the first
    clean and the first misaligned original pairs, half and half, where the data knows which is which."""
    from mamc.caption.grid import grid_for_video

    if not Run(cfg).caption_files():
        return None
    vlm = {r["video_id"]: r["caption"] for r in load_rows(cfg, "train", with_vlm=True) if r.get("source") == "vlm"}
    shown = [(r, noise) for r, noise in examples([r for r in load_rows(cfg, "train") if r["video_id"] in vlm], n)]
    return plots.grids_with_captions(
        [grid_for_video(cfg.data_dir / r["video"], cfg) for r, _ in shown],
        [(vlm[r["video_id"]], r["caption"], *([r["true_caption"]] if "true_caption" in r else [])) for r, _ in shown],
        ["VLM", "original", "truth"], flags=[f"original misaligned ({noise.replace('_', ' ')})" if noise else None
                                             for _, noise in shown])


def _real_clip_captions(cfg: Config):
    from mamc.caption.grid import grid_for_video

    path = Run(cfg).path("real clip captions")
    if not path.exists():
        return None
    rows = [r for r in json.loads(path.read_text()) if Path(r["clip"]).exists()]
    return plots.grids_with_captions([grid_for_video(r["clip"], cfg) for r in rows],
                                     [(Path(r["clip"]).name, r["caption"]) for r in rows], ["clip", "caption"],
                                     per_row=2) if rows else None


def _training_curves(cfg: Config):
    summaries, scalars = training_log(cfg)
    return plots.training_curves(scalars, summaries)


def _weight_curves(cfg: Config):
    if not {"meta", "mama"} & set(cfg.methods):
        return None
    name = ablation_name(cfg, weighted_method(cfg), cfg.seeds[0])
    grid, curves = weight_curve_data(cfg, name)
    write_json(Run(cfg).figures / "weight_curves.json",
               {"run": name, "loss": grid.tolist(), "curves": {str(k): v.tolist() for k, v in curves.items()}})
    return plots.weight_curves(grid, curves, run=name)


def _loss_weight_distributions(cfg: Config):
    if not {"meta", "mama"} & set(cfg.methods):
        return None
    name = ablation_name(cfg, weighted_method(cfg), cfg.seeds[0])
    return plots.loss_weight_distributions(weighted_samples(cfg, name), run=name)


def _topic_improvement(cfg: Config):
    if not {"mama", "infonce"} <= set(cfg.methods):
        return None
    share, words = topic_shares_and_words(cfg)
    return plots.topic_figure(share, words, per_topic_gains(cfg))


def _improvement_vs_frequency(cfg: Config):
    if not {"mama", "infonce"} <= set(cfg.methods):
        return None
    topics = Run(cfg).read("corpus")["splits"]["train"]["topics"]
    return plots.improvement_vs_frequency(topics, per_topic_gains(cfg))


def _margin_sweep(cfg: Config):
    if not sweep_runs(cfg):
        return None
    run = Run(cfg)
    values = [run.read("test", name)["t2v"]["R@1"] for name, _ in sweep_runs(cfg)]
    results = run_results(cfg)
    of = lambda method: results.loc[results["method"] == method, "t2v R@1"].tolist()  # noqa: E731
    chosen = (method_config(cfg, "margin").margin, of("margin")) if "margin" in cfg.methods else None
    return plots.margin_sweep(list(cfg.margin_sweep), values, baseline=of("infonce"), chosen=chosen, seed=cfg.seeds[0])


def _methods_t2v_r1(cfg: Config):
    return plots.method_bars(run_results(cfg), "t2v R@1", "test t2v R@1 (%)")


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
    """Write the named figures (default: all, and then the contact sheet) to `figures/` as PDF + 300-dpi PNG;
    returns the paths by name, leaving out figures that do not apply to this run."""
    unknown = set(names or ()) - set(FIGURES)
    if unknown:
        raise ValueError(f"unknown figure(s) {sorted(unknown)}; known: {', '.join(FIGURES)}")
    made: dict[str, list[Path]] = {}
    for name in names or FIGURES:
        fig = FIGURES[name](cfg)
        if fig is None:
            continue
        made[name] = style.save_figure(fig, Run(cfg).figures, name)
        if close:
            plt.close(fig)
    if names is None:
        made["contact_sheet"] = contact_sheet({name: paths[1] for name, paths in made.items()}, Run(cfg).figures)
    return made


def contact_sheet(pngs: dict[str, Path], out_dir: Path, width: float = style.PAGE + 0.6) -> list[Path]:
    """Every figure at its print size (from its 300-dpi PNG), named, on one long page `width` inches wide, so
    that an author reviews them all at once: `contact_sheet.pdf` and `contact_sheet.png` (150 dpi)."""
    images = {}
    for name, path in pngs.items():
        with Image.open(path) as im:
            images[name] = np.asarray(im)
    sizes = {name: (a.shape[1] / 300, a.shape[0] / 300) for name, a in images.items()}
    gap, label = 0.15, 0.18
    placed, x, y, row = [], 0.0, 0.0, 0.0
    for name, (w, h) in sizes.items():
        if x and x + w > width:
            x, y, row = 0.0, y + row + gap, 0.0
        placed.append((name, x, y, w, h))
        x, row = x + w + gap, max(row, h + label)
    height = y + row
    style.use_style()
    fig = plt.figure(figsize=(width, height))
    for name, x, y, w, h in placed:
        ax = fig.add_axes((x / width, 1 - (y + label + h) / height, w / width, h / height))
        ax.imshow(images[name], interpolation="lanczos")
        ax.axis("off")
        fig.text(x / width, 1 - (y + 0.02) / height, name, va="top", fontsize=7, weight="bold")
    paths = [out_dir / "contact_sheet.pdf", out_dir / "contact_sheet.png"]
    fig.savefig(paths[0], dpi=300)
    fig.savefig(paths[1], dpi=150)
    plt.close(fig)
    return paths
