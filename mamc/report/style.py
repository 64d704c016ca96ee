"""The kit's one figure style: display names and a fixed colour per method, Okabe–Ito colours (colour-blind
safe), print sizes (a paper's column and page), legends kept off the data, and a note in every figure saying
what its error bars are. Every figure of `plots` is drawn with it."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import seaborn as sns

COLUMN = 3.3  # inches: one column of a two-column paper
PAGE = 7.0  # inches: the full text width
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
METHOD_NAMES = {"infonce": "InfoNCE", "margin": "Subtractive margin", "meta": "Meta-weighting", "vlm": "VLM captions",
                "mama": "MAMA", "additive": "Additive margin"}
METHOD_COLORS = {"infonce": "#000000", "margin": "#0072B2", "meta": "#009E73", "vlm": "#E69F00", "mama": "#D55E00",
                 "additive": "#CC79A7"}
STYLE = {
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7, "xtick.labelsize": 7,
    "ytick.labelsize": 7, "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 110,
    "savefig.bbox": "tight", "pdf.fonttype": 42, "ps.fonttype": 42, "legend.frameon": False,
    "axes.prop_cycle": matplotlib.cycler(color=OKABE_ITO),
}


def use_style() -> None:
    sns.set_theme(context="paper", style="ticks", palette=OKABE_ITO, rc=STYLE)


def figure(width: float = COLUMN, height: float = 2.3, **kw):
    """A new figure at print size (inches) in the kit's style, laid out by constrained layout."""
    use_style()
    return plt.subplots(figsize=(width, height), layout="constrained", **kw)


def method_name(method: str) -> str:
    """"InfoNCE", "MAMA"…: what a reader calls the method (unknown names are shown as they are)."""
    return METHOD_NAMES.get(method, method)


def method_color(method: str) -> str:
    """The method's colour, the same in every figure."""
    return METHOD_COLORS.get(method, "#999999")


def interval_note(n: int, what: str = "whiskers") -> str:
    """What an error bar is, said in the figure: a 95% Student-t interval over n seeds (none for one)."""
    return f"{what}: 95% Student-t interval over {n} seeds" if n > 1 else f"one seed: no interval ({what} omitted)"


def note(fig, text: str) -> None:
    """A footnote under the axes: what was compared, over how many seeds, what the bars are."""
    fig.text(0.0, 0.0, text, ha="left", va="top", fontsize=6, color="0.3", wrap=True,
             transform=fig.transFigure)


def legend_above(ax, ncol: int | None = None, **kw) -> None:
    """The axes' legend in one row above the plot, never over the data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="lower left", bbox_to_anchor=(0.0, 1.01), ncol=ncol or len(handles),
                  borderaxespad=0.0, handlelength=1.5, columnspacing=1.0, **kw)


def save_figure(fig, out_dir: str | Path, name: str) -> list[Path]:
    """`name.pdf` (vector) and `name.png` (300 dpi) in out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.pdf", out_dir / f"{name}.png"]
    fig.savefig(paths[0])
    fig.savefig(paths[1], dpi=300)
    return paths
