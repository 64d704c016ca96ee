"""Publication-quality figures in the kit's one style (`mamc.report.style`). Every function takes data (never
paths) and returns a matplotlib Figure at print size: a paper's column (3.3 in) or page (7 in). Methods carry
their display names and fixed colours; every error bar or band is named in the figure itself; legends sit
outside the data; recall axes stay within [0, 100]."""
from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import Normalize
from matplotlib.patches import Patch

from mamc.data.card import by_frequency
from mamc.evaluate import mean_ci
from mamc.report.style import (
    COLUMN,
    OKABE_ITO,
    PAGE,
    figure,
    interval_note,
    legend_above,
    method_color,
    method_name,
    note,
    use_style,
)


def _t_half(values: Sequence[float]) -> float:
    """Half-width of the 95% Student-t interval of the mean over seeds (NaN for fewer than two)."""
    ci = mean_ci(list(values))
    return (ci["hi"] - ci["lo"]) / 2


def weight_curves(loss_grid: np.ndarray, curves: Mapping[int, np.ndarray], run: str = "", last_step: int | None = None):
    """The learned loss→weight mapping at each saved step, coloured by step (colour bar, no legend)."""
    fig, ax = figure(COLUMN, 2.4)
    steps = sorted(curves)
    norm = Normalize(min(steps), last_step or max(steps))
    for step in steps:
        ax.plot(loss_grid, curves[step], color=plt.cm.viridis(norm(step)), lw=1, label=f"step {step}")
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=ax, label="training step", pad=0.02)
    ax.set_xlabel("per-sample training loss (nats)")
    ax.set_ylabel("weight (MLP output)")
    ax.set_ylim(0, 1)
    ax.set_title(f"Learned loss → weight{f', {run}' if run else ''}", loc="left")
    return fig


def logit_geometry(margins: Sequence[float], temperature: float = 1.0, additive: float | None = None):
    """Positive logit cos(θ − m)/τ against θ for several margins, and the additive margin's cos(θ + m)."""
    fig, ax = figure(COLUMN, 3.3)
    theta = np.linspace(0, np.pi, 300)
    for m in margins:
        label = f"subtractive, m = {m:g} rad ({np.degrees(m):.0f}°)" if m else "InfoNCE, cos θ (m = 0)"
        ax.plot(np.degrees(theta), np.cos(theta - m) / temperature, label=label, color="black" if not m else None)
    if additive:
        ax.plot(np.degrees(theta), np.cos(theta + additive) / temperature, ls="--", color=method_color("additive"),
                label=f"additive (ArcFace-style), cos(θ + m), m = {additive:g} rad ({np.degrees(additive):.0f}°)")
    ax.set_xlabel("angle θ between video and text (degrees)")
    ax.set_ylabel("positive logit × τ" if temperature == 1 else "positive logit")
    legend_above(ax, ncol=1)
    return fig


def topic_distribution(counts: Mapping[str, int], groups: Mapping[str, str] | None = None):
    """Clips per topic, most frequent first (ties by name), head and tail told apart by colour and legend."""
    fig, ax = figure(PAGE, 2.4)
    names = by_frequency(counts)
    colour = {"head": OKABE_ITO[0], "tail": OKABE_ITO[1]}
    ax.bar(range(len(names)), [counts[n] for n in names], color=[colour[(groups or {}).get(n, "head")] for n in names])
    ax.set_xticks(range(len(names)), names, rotation=55, ha="right", rotation_mode="anchor")
    ax.set_ylabel("training clips")
    ax.set_xlim(-0.6, len(names) - 0.4)
    if groups:
        ax.legend([Patch(color=colour["head"]), Patch(color=colour["tail"])],
                  ["head: the most frequent half of the topics", "tail: the rest"],
                  loc="lower left", bbox_to_anchor=(0.0, 1.01), ncol=2, borderaxespad=0.0)
    return fig


def _topic_label(name: str, words: Sequence[str]) -> str:
    extra = [w for w in words[:3] if w not in name.split()]
    return f"{name} · {' '.join(extra)}" if extra else name


def topic_figure(share: Mapping[str, float], top_words: Mapping[str, Sequence[str]], gains: Mapping[str, Sequence[float]],
                 label: str = "MAMA − InfoNCE"):
    """The paper's topic figure: each topic's share of the training clips (top) and a method's per-topic R@1
    gain over a baseline (bottom: mean over seeds, whiskers a 95% interval), topics most frequent first."""
    fig, (top, bottom) = figure(PAGE, 4.0, nrows=2, sharex=True, height_ratios=[1, 1.3])
    names = by_frequency(share)
    x = np.arange(len(names))
    top.bar(x, [share[n] * 100 for n in names], color=OKABE_ITO[5])
    top.set_ylabel("share of clips (%)")
    top.set_title("Training clips per topic", loc="left")
    mean = [float(np.mean(gains[n])) if len(gains.get(n, ())) else np.nan for n in names]
    half = [_t_half(gains.get(n, ())) for n in names]
    bottom.axhline(0, color="0.6", lw=0.6, zorder=0)
    bottom.errorbar(x, mean, yerr=None if np.isnan(half).all() else half, fmt="o", ms=3, capsize=2, lw=0.8,
                    color=method_color("mama"))
    bottom.set_ylabel("t2v R@1 gain (points)")
    bottom.set_title(f"Per-topic gain, {label}", loc="left")
    fig.align_ylabels((top, bottom))
    bottom.set_xticks(x, [_topic_label(n, top_words.get(n, [])) for n in names], rotation=55, ha="right",
                      rotation_mode="anchor")
    n = max((len(v) for v in gains.values()), default=0)
    note(fig, f"Top: share of the training clips per topic. Bottom: per-topic test t2v R@1 of {label}, mean over {n} "
              f"seed(s); {interval_note(n)}.")
    return fig


def improvement_vs_frequency(frequency: Mapping[str, float], gains: Mapping[str, Sequence[float]],
                             label: str = "MAMA − InfoNCE"):
    """Per-topic gain against training clips (log axis), with a least-squares line and its 95% bootstrap band."""
    fig, ax = figure(COLUMN, 2.6)
    names = [n for n in by_frequency(frequency) if len(gains.get(n, ())) and np.isfinite(np.mean(gains[n]))]
    df = pd.DataFrame({"log10 clips": np.log10([max(frequency[n], 1) for n in names]),
                       "gain": [float(np.mean(gains[n])) for n in names]})
    sns.regplot(data=df, x="log10 clips", y="gain", ax=ax, ci=95, n_boot=1000, seed=0,
                scatter_kws={"s": 12, "color": method_color("mama")}, line_kws={"color": "0.2", "lw": 1})
    ax.axhline(0, color="0.6", lw=0.6, zorder=0)
    lo, hi = df["log10 clips"].min(), df["log10 clips"].max()
    ticks = [t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)
             if lo - 0.05 <= np.log10(t) <= hi + 0.05]
    ax.set_xticks(np.log10(ticks), [f"{t:,}" for t in ticks])
    ax.set_xlabel("training clips of the topic (log scale)")
    ax.set_ylabel("t2v R@1 gain (points)")
    ax.set_title(label, loc="left")
    n = max((len(v) for v in gains.values()), default=0)
    note(fig, f"One point per topic: {label}, mean over {n} seed(s). Line: least-squares fit over topics; band: its "
              "95% bootstrap interval (topics resampled).")
    return fig


def loss_weight_distributions(samples: pd.DataFrame, run: str = ""):
    """Cumulative distributions (no bins, so no spike hides a tail) of per-sample loss (log axis) and weight, for
    clean vs misaligned pairs (top) and head vs tail topics (bottom)."""
    fig, axes = figure(PAGE, 4.0, nrows=2, ncols=2)
    data = samples.assign(pairs=samples["aligned"].map({True: "clean", False: "misaligned"}).fillna("alignment unknown"),
                          topics=samples["group"].map({"head": "head topics", "tail": "tail topics"}))
    for row, split in enumerate(("pairs", "topics")):
        levels = sorted(data[split].dropna().unique())
        palette = dict(zip(levels, OKABE_ITO))
        for col, value in enumerate(("loss", "weight")):
            ax = axes[row, col]
            sns.ecdfplot(data=data, x=value, hue=split, hue_order=levels, palette=palette, ax=ax, legend=False,
                         log_scale=value == "loss" and bool((data["loss"] > 0).all()))
            ax.set_xlabel("per-sample loss (nats, log scale)" if value == "loss" else "normalised weight (1 = batch mean)")
            ax.set_ylabel("fraction of pairs ≤ x")
        axes[row, 0].legend([plt.Line2D([], [], color=palette[v]) for v in levels], levels, loc="lower left",
                            bbox_to_anchor=(0.0, 1.01), ncol=len(levels), borderaxespad=0.0)
    steps = f", steps {samples['step'].min()}–{samples['step'].max()}" if "step" in samples and len(samples) else ""
    note(fig, f"Per-sample loss and weight{f' of run {run}' if run else ''}{steps} (second half of training), as "
              "cumulative distributions.")
    return fig


def margin_sweep(margins: Sequence[float], values: Sequence[float], baseline: Sequence[float] = (),
                 chosen: tuple[float, Sequence[float]] | None = None, seed: int = 0, metric: str = "test t2v R@1 (%)"):
    """The sweep's one seed against the margin m, beside InfoNCE over all seeds (line and 95% band) and the chosen
    margin's ablation over all seeds (mean and 95% interval)."""
    fig, ax = figure(COLUMN, 2.5)
    ax.plot(margins, values, marker="o", ms=3, color=method_color("margin"), label=f"sweep, seed {seed}")
    if len(baseline):
        mean, half = float(np.mean(baseline)), _t_half(baseline)
        ax.axhline(mean, color=method_color("infonce"), lw=0.8, label=f"InfoNCE, {len(baseline)} seeds")
        if np.isfinite(half):
            ax.axhspan(mean - half, mean + half, color="0.85", lw=0, zorder=0)
    if chosen is not None and len(chosen[1]):
        m, runs = chosen
        half = _t_half(runs)
        ax.errorbar([m], [np.mean(runs)], yerr=None if np.isnan(half) else [[half], [half]], fmt="D", ms=4, capsize=2,
                    color=method_color("mama"), label=f"m = {m:g} (chosen), {len(runs)} seeds")
    ax.set_xlabel("margin m (radians)")
    ax.set_ylabel(metric)
    ax.set_ylim(bottom=0)
    legend_above(ax, ncol=1)
    n = len(baseline)
    note(fig, f"Sweep: one training per margin (seed {seed}); InfoNCE line and grey band: mean and "
              f"{interval_note(n, 'band').split(': ', 1)[-1]}; diamond: the chosen margin's mean, whiskers the same "
              "interval.")
    return fig


def frame_strip(frames: np.ndarray, caption: str, flag: str | None = None):
    """The frames of one clip side by side, with its caption (and a marker for misaligned pairs)."""
    use_style()
    fig, axes = plt.subplots(1, len(frames), figsize=(PAGE, PAGE / len(frames) + 0.35))
    for ax, frame in zip(np.atleast_1d(axes), frames):
        ax.imshow(frame)
        ax.axis("off")
    fig.suptitle(caption + (f"   [{flag}]" if flag else ""), fontsize=8, color=OKABE_ITO[3] if flag else "black")
    return fig


def method_bars(per_seed: pd.DataFrame, metric: str, ylabel: str | None = None, percent: bool = True):
    """One metric per method: the mean over seeds (bar), its 95% Student-t interval (whiskers, clipped to
    [0, 100] for a percentage) and every seed (dots). `per_seed` has columns method, seed and `metric`."""
    fig, ax = figure(COLUMN, 2.6)
    methods = list(dict.fromkeys(per_seed["method"]))
    for i, method in enumerate(methods):
        values = per_seed.loc[per_seed["method"] == method, metric].dropna().to_numpy()
        mean, half = values.mean(), _t_half(values)
        ax.bar(i, mean, color=method_color(method), alpha=0.85, width=0.7)
        if np.isfinite(half):
            lo, hi = (max(mean - half, 0.0), min(mean + half, 100.0)) if percent else (mean - half, mean + half)
            ax.errorbar(i, mean, yerr=[[mean - lo], [hi - mean]], fmt="none", color="black", capsize=2, lw=0.8)
        jitter = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else [0.0]
        ax.scatter(i + np.asarray(jitter), values, s=6, color="white", edgecolor="black", linewidth=0.5, zorder=3)
    ax.set_xticks(range(len(methods)), [method_name(m) for m in methods], rotation=30, ha="right",
                  rotation_mode="anchor")
    ax.set_ylabel(ylabel or metric)
    if percent:
        ax.set_ylim(0, min(100.0, ax.get_ylim()[1]))
    n = per_seed.groupby("method")["seed"].nunique().max()
    note(fig, f"Bars: mean over {n} seeds; dots: the seeds; {interval_note(n)}"
              f"{', clipped to [0, 100]' if percent and n > 1 else ''}.")
    return fig


def _trim_black(img) -> np.ndarray:
    """The image without the black bands a letterboxed grid carries (rows and columns that are all near black)."""
    a = np.asarray(img)
    lit = a.reshape(a.shape[0], a.shape[1], -1).max(axis=2) > 8
    rows, cols = np.flatnonzero(lit.any(axis=1)), np.flatnonzero(lit.any(axis=0))
    return a[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1] if len(rows) and len(cols) else a


def grids_with_captions(images: Sequence, captions: Sequence[Sequence[str]], labels: Sequence[str],
                        flags: Sequence[str | None] | None = None, per_row: int = 4):
    """Keyframe grids (`per_row` to a row, black bands trimmed) with their captions underneath, one label per
    paragraph, each wrapped to its column's width; `flags` marks a grid (e.g. a misaligned original caption)."""
    use_style()
    trimmed = [_trim_black(img) for img in images]
    cols = min(per_row, len(images))
    rows = -(-len(images) // cols)
    width = PAGE / cols
    lines = max(len(textwrap.fill(f"{label}: {c}", max(16, int(width * 14))).splitlines()) + 1
                for caps in captions for label, c in zip(labels, caps))
    heights = [width * max(t.shape[0] / t.shape[1] for t in trimmed[r * cols:(r + 1) * cols]) + 0.12 * lines + 0.3
               for r in range(rows)]  # each row as tall as its tallest grid, plus its captions
    fig, axes = plt.subplots(rows, cols, figsize=(PAGE, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax in axes.flat[len(images):]:
        ax.axis("off")
    for k, (ax, img, caps) in enumerate(zip(axes.flat, trimmed, captions)):
        ax.imshow(img)
        ax.set_anchor("N")  # the image at the top of its cell, its captions right under it
        ax.axis("off")
        text = "\n".join(textwrap.fill(f"{label}: {c}", max(16, int(width * 14))) for label, c in zip(labels, caps))
        flag = (flags or [None] * len(images))[k]
        if flag:
            ax.set_title(textwrap.fill(flag, max(16, int(width * 12))), fontsize=6.5, color=OKABE_ITO[3])
        ax.text(0.5, -0.04, text, transform=ax.transAxes, ha="center", va="top", fontsize=6)
    return fig


def training_curves(scalars: pd.DataFrame, runs: pd.DataFrame, metric: str = "val/rsum"):
    """Validation R-sum against step, one panel per method, one line per seed (`runs`: run, method, seed), the
    selected (best) step of each run marked."""
    methods = list(dict.fromkeys(runs["method"]))
    cols = min(3, len(methods))
    rows = -(-len(methods) // cols)
    fig, axes = figure(PAGE, 1.7 * rows + 0.3, nrows=rows, ncols=cols, sharex=True, sharey=True, squeeze=False)
    data = scalars.dropna(subset=[metric])
    styles = ["-", "--", ":", "-."]
    for ax, method in zip(axes.flat, methods):
        for k, row in enumerate(runs[runs["method"] == method].itertuples()):
            part = data[data["run"] == row.run]
            ax.plot(part["step"], part[metric], color=method_color(method), lw=0.9, ls=styles[k % len(styles)],
                    label=f"seed {row.seed}")
            if len(part):
                best = part.loc[part[metric].idxmax()]
                ax.plot(best["step"], best[metric], "o", ms=3, color=method_color(method))
        ax.set_title(method_name(method), loc="left")
    for ax in axes.flat[len(methods):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("training step")
    for ax in axes[:, 0]:
        ax.set_ylabel("validation R-sum")
    seeds = sorted(set(runs["seed"]))
    fig.legend([plt.Line2D([], [], color="0.3", lw=0.9, ls=styles[k % len(styles)]) for k in range(len(seeds))],
               [f"seed {s}" for s in seeds], loc="outside upper right", ncol=len(seeds))
    note(fig, "R-sum: R@1 + R@5 + R@10 in both directions on the validation split (maximum 600). One line per seed; "
              "dot: the selected (best) validation.")
    return fig


def attribute_accuracy(table: pd.DataFrame):
    """Grouped bars of caption accuracy per attribute (`table`: rows attributes, columns caption sources)."""
    fig, ax = figure(COLUMN, 2.6)
    table.plot.bar(ax=ax, color=OKABE_ITO[: table.shape[1]], rot=0, width=0.8, legend=False)
    ax.set_ylabel("captions stating it correctly (%)")
    ax.set_xlabel("attribute")
    ax.set_ylim(0, 100)
    legend_above(ax, ncol=1)
    return fig


def loss_profile(thetas: np.ndarray, curves: Mapping[str, tuple[np.ndarray, np.ndarray]], margin: float):
    """Loss of a positive pair (left) and its pull dℓ/dθ (right) against the angle θ, one line per objective;
    the dotted line marks θ = m, where the subtractive margin stops pulling."""
    fig, axes = figure(PAGE, 2.5, ncols=2)
    degrees = np.degrees(thetas)
    for label, (loss, grad) in curves.items():
        axes[0].plot(degrees, loss, label=label)
        axes[1].plot(degrees, grad, label=label)
    for ax in axes:
        ax.axvline(np.degrees(margin), color="0.5", ls=":", lw=0.8)
        ax.set_xlabel("angle θ of the positive pair (degrees)")
    axes[0].set_ylabel("per-sample loss ℓ (nats)")
    axes[1].set_ylabel("dℓ/dθ (> 0: pulled closer)")
    axes[1].axhline(0, color="0.6", lw=0.6)
    legend_above(axes[0])
    note(fig, f"Dotted line: θ = m = {margin:g} rad ({np.degrees(margin):.0f}°).")
    return fig


def dose_response(table: pd.DataFrame, accuracy: str = "captions all right (%)"):
    """The gain of caption augmentation (points of test t2v R@1 over InfoNCE, mean and 95% interval over seeds)
    against the captioner's accuracy, one point per captioner strength, labelled by its training steps."""
    fig, ax = figure(COLUMN, 2.5)
    yerr = np.vstack([table["gain"] - table["lo"], table["hi"] - table["gain"]])
    ax.errorbar(table[accuracy], table["gain"], yerr=None if np.isnan(yerr).all() else yerr, marker="o", ms=3,
                capsize=2, color=method_color("vlm"))
    for x, y, steps in zip(table[accuracy], table["gain"], table["captioner steps"]):
        ax.annotate(f"{steps} steps", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=6)
    ax.axhline(0, color="0.5", lw=0.6, ls="--")
    ax.set_xlim(0, 100)
    ax.set_xlabel("training videos captioned with all four attributes right (%)")
    ax.set_ylabel("t2v R@1 gain over InfoNCE (points)")
    ax.set_title("VLM captions − InfoNCE", loc="left")
    n = int(table["seeds"].max())
    note(fig, f"Each point: the captioner after that many training steps; gain paired by seed, mean over {n} seeds; "
              f"{interval_note(n)}.")
    return fig
