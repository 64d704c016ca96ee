"""Publication-quality figures. Every function takes data (never paths) and returns a matplotlib Figure;
`save_figure` writes it as vector PDF and 300-dpi PNG. One style for all: Okabe–Ito colours (colour-blind
safe), sizes in inches for one- and two-column layouts."""
from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

ONE_COLUMN = 3.35
TWO_COLUMN = 6.9
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
STYLE = {
    "font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "legend.fontsize": 7, "xtick.labelsize": 7,
    "ytick.labelsize": 7, "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 110,
    "savefig.bbox": "tight", "pdf.fonttype": 42, "ps.fonttype": 42, "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
}


def use_style() -> None:
    sns.set_theme(context="paper", style="ticks", palette=PALETTE, rc=STYLE)


def _figure(width: float = ONE_COLUMN, height: float = 2.3, **kw):
    use_style()
    return plt.subplots(figsize=(width, height), constrained_layout=True, **kw)


def save_figure(fig, out_dir: str | Path, name: str) -> list[Path]:
    """`name.pdf` (vector) and `name.png` (300 dpi) in out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.pdf", out_dir / f"{name}.png"]
    fig.savefig(paths[0])
    fig.savefig(paths[1], dpi=300)
    return paths


def weight_curves(loss_grid: np.ndarray, curves: Mapping[int, np.ndarray]):
    """The learned loss→weight mapping at several training steps (darker = later)."""
    fig, ax = _figure()
    steps = sorted(curves)
    colors = plt.cm.viridis(np.linspace(0.15, 0.9, len(steps)))
    for color, step in zip(colors, steps):
        ax.plot(loss_grid, curves[step], color=color, label=f"step {step}")
    ax.set_xlabel("per-sample loss")
    ax.set_ylabel("weight")
    ax.legend(frameon=False, ncol=2 if len(steps) > 4 else 1)
    ax.set_title("Learned loss → weight")
    return fig


def logit_geometry(margins: Sequence[float], temperature: float = 1.0, additive: float | None = None):
    """Positive logit cos(θ − m)/τ against θ for several margins (and cos(θ + m) for comparison)."""
    fig, ax = _figure()
    theta = np.linspace(0, np.pi, 300)
    for m in margins:
        ax.plot(np.degrees(theta), np.cos(theta - m) / temperature, label=f"cos(θ − {m:g})" if m else "cos θ (InfoNCE)")
    if additive:
        ax.plot(np.degrees(theta), np.cos(theta + additive) / temperature, ls="--", color="0.4", label=f"cos(θ + {additive:g})")
    ax.set_xlabel("angle θ between video and text (degrees)")
    ax.set_ylabel("positive logit × τ" if temperature == 1 else "positive logit")
    ax.legend(frameon=False)
    return fig


def topic_distribution(counts: Mapping[str, int], groups: Mapping[str, str] | None = None):
    """Bar chart of clips per topic, most frequent first (the long tail)."""
    fig, ax = _figure(TWO_COLUMN, 2.2)
    names = sorted(counts, key=counts.get, reverse=True)
    colors = [PALETTE[0] if (groups or {}).get(n, "head") == "head" else PALETTE[1] for n in names]
    ax.bar(range(len(names)), [counts[n] for n in names], color=colors)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.set_ylabel("training clips")
    ax.set_title("Topics in the training split")
    return fig


def topic_figure(share: Mapping[str, float], top_words: Mapping[str, Sequence[str]], improvement: Mapping[str, float],
                 label: str = "MAMA vs InfoNCE"):
    """The paper's topic figure: share of each topic (bars, labelled with its top words) and the R@1
    improvement of a method over a baseline per topic (points, right axis; `label` names the two)."""
    fig, ax = _figure(TWO_COLUMN, 2.8)
    names = sorted(share, key=share.get, reverse=True)
    x = np.arange(len(names))
    ax.bar(x, [share[n] * 100 for n in names], color=PALETTE[5], label="share of training clips")
    ax.set_ylabel("share of training clips (%)")
    ax.set_xticks(x, [f"{n}\n{' '.join(top_words.get(n, [])[:3])}" for n in names], rotation=70, ha="right", fontsize=6)
    ax2 = ax.twinx()
    ax2.axhline(0, color="0.6", lw=0.6)
    ax2.plot(x, [improvement.get(n, np.nan) for n in names], "o", color=PALETTE[3], ms=3, label=label)
    ax2.set_ylabel("R@1 improvement (points)")
    ax2.spines["right"].set_visible(True)
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)
    return fig


def improvement_vs_frequency(frequency: Mapping[str, float], improvement: Mapping[str, float]):
    """Per-topic improvement against log training frequency, with a least-squares trend and its 95% band."""
    fig, ax = _figure()
    names = [n for n in frequency if n in improvement and np.isfinite(improvement[n])]
    df = pd.DataFrame({"log10 frequency": np.log10([max(frequency[n], 1) for n in names]),
                       "improvement": [improvement[n] for n in names]})
    sns.regplot(data=df, x="log10 frequency", y="improvement", ax=ax, ci=95, n_boot=1000, seed=0,
                scatter_kws={"s": 12, "color": PALETTE[0]}, line_kws={"color": PALETTE[3], "lw": 1})
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set_xlabel("log10 training clips of the topic")
    ax.set_ylabel("R@1 improvement (points)")
    return fig


def loss_weight_distributions(samples: pd.DataFrame):
    """Per-sample loss and weight, split by clean vs misaligned and by head vs tail topics.

    `samples` needs columns loss, weight, aligned (bool) and group ("head"/"tail").
    """
    fig, axes = _figure(TWO_COLUMN, 2.4, ncols=4)
    for col, (value, split) in enumerate([("loss", "aligned"), ("weight", "aligned"), ("loss", "group"), ("weight", "group")]):
        ax = axes[col]
        data = samples.assign(aligned=samples["aligned"].map({True: "clean", False: "misaligned"}).fillna("unknown"))
        sns.histplot(data=data, x=value, hue=split, stat="density", common_norm=False, element="step", fill=False,
                     ax=ax, bins=30, palette=PALETTE[:2])
        ax.set_title(f"{value} by {'alignment' if split == 'aligned' else 'topic frequency'}")
    return fig


def margin_sweep(margins: Sequence[float], values: Sequence[float], errors: Sequence[float] | None = None,
                 metric: str = "test t2v R@1"):
    """A metric against the subtractive margin m."""
    fig, ax = _figure()
    ax.errorbar(margins, values, yerr=errors, marker="o", ms=3, capsize=2, color=PALETTE[0])
    ax.set_xlabel("margin m (radians)")
    ax.set_ylabel(metric)
    return fig


def frame_strip(frames: np.ndarray, caption: str, flag: str | None = None):
    """The frames of one clip side by side, with its caption (and a marker for misaligned pairs)."""
    use_style()
    fig, axes = plt.subplots(1, len(frames), figsize=(TWO_COLUMN, TWO_COLUMN / len(frames) + 0.35))
    for ax, frame in zip(np.atleast_1d(axes), frames):
        ax.imshow(frame)
        ax.axis("off")
    fig.suptitle(caption + (f"   [{flag}]" if flag else ""), fontsize=8, color=PALETTE[3] if flag else "black")
    return fig


def method_bars(table: pd.DataFrame, metric: str):
    """Mean ± 95% interval of one metric per method (rows of `table`: method, mean, lo, hi)."""
    fig, ax = _figure()
    x = np.arange(len(table))
    ax.bar(x, table["mean"], color=PALETTE[0])
    err = np.vstack([table["mean"] - table["lo"], table["hi"] - table["mean"]])
    if np.isfinite(err).all():
        ax.errorbar(x, table["mean"], yerr=err, fmt="none", color="black", capsize=2, lw=0.8)
    ax.set_xticks(x, table["method"], rotation=30, ha="right")
    ax.set_ylabel(metric)
    return fig


def grids_with_captions(images: Sequence, captions: Sequence[Sequence[str]], labels: Sequence[str]):
    """Keyframe grids (one per column) with their captions underneath, one label per paragraph, each wrapped to
    its column's width."""
    use_style()
    width = max(16, 128 // len(images))
    fig, axes = plt.subplots(1, len(images), figsize=(TWO_COLUMN, TWO_COLUMN / len(images) + 1.6), squeeze=False)
    for ax, img, caps in zip(axes[0], images, captions):
        ax.imshow(img)
        ax.axis("off")
        text = "\n".join(textwrap.fill(f"{label}: {c}", width) for label, c in zip(labels, caps))
        ax.text(0.5, -0.04, text, transform=ax.transAxes, ha="center", va="top", fontsize=5.5)
    return fig


def training_curves(scalars: pd.DataFrame, metric: str = "val/rsum"):
    """A validation metric against step, one line per run (`scalars` has columns run, step, metric)."""
    fig, ax = _figure()
    data = scalars.dropna(subset=[metric])
    for i, (run, part) in enumerate(data.groupby("run", sort=False)):
        ax.plot(part["step"], part[metric], marker="o", ms=2, label=run, color=PALETTE[i % len(PALETTE)])
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.legend(frameon=False, fontsize=6)
    return fig


def attribute_accuracy(table: pd.DataFrame):
    """Grouped bars of caption accuracy per attribute (`table`: rows attributes, columns caption sources)."""
    fig, ax = _figure()
    table.plot.bar(ax=ax, color=PALETTE[: table.shape[1]], rot=0)
    ax.set_ylabel("captions stating it correctly (%)")
    ax.set_ylim(0, 100)
    ax.legend(frameon=False)
    return fig


def loss_profile(thetas: np.ndarray, curves: Mapping[str, tuple[np.ndarray, np.ndarray]], margin: float):
    """Loss of a positive pair (left) and its pull dℓ/dθ (right) against the angle θ, one line per objective;
    the dotted line marks θ = m, where the subtractive margin stops pulling."""
    fig, axes = plt.subplots(1, 2, figsize=(TWO_COLUMN, 2.3))
    degrees = np.degrees(thetas)
    for label, (loss, grad) in curves.items():
        axes[0].plot(degrees, loss, label=label)
        axes[1].plot(degrees, grad, label=label)
    for ax in axes:
        ax.axvline(np.degrees(margin), color="0.5", ls=":", lw=0.8)
        ax.set_xlabel("angle θ of the positive pair (degrees)")
    axes[0].set_ylabel("per-sample loss ℓ")
    axes[1].set_ylabel("dℓ/dθ (> 0: pulled closer)")
    axes[1].axhline(0, color="0.6", lw=0.6)
    axes[0].legend(frameon=False)
    fig.tight_layout()
    return fig


def dose_response(table: pd.DataFrame, accuracy: str = "captions all right (%)"):
    """The gain of caption augmentation (points of test t2v R@1 over InfoNCE, mean and 95% interval over seeds)
    against the captioner's accuracy, one point per captioner strength, labelled by its training steps."""
    fig, ax = _figure()
    yerr = np.vstack([table["gain"] - table["lo"], table["hi"] - table["gain"]])
    ax.errorbar(table[accuracy], table["gain"], yerr=yerr, marker="o", ms=3, capsize=2, color=PALETTE[0])
    for x, y, steps in zip(table[accuracy], table["gain"], table["captioner steps"]):
        ax.annotate(f"{steps} steps", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=6)
    ax.axhline(0, color="0.5", lw=0.6, ls="--")
    ax.set_xlabel(f"captioner: {accuracy}")
    ax.set_ylabel("vlm − infonce, t2v R@1")
    return fig

