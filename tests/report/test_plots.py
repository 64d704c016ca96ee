"""Every plotting function takes data, returns a Figure at print size in the kit's style, and saves PDF + PNG;
content, display names, error-bar notes and legend placement are checked."""
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.container import ErrorbarContainer
from matplotlib.patches import Rectangle

from mamc.meta import WeightNet
from mamc.report import plots
from mamc.report.style import save_figure
from mamc.runs import curve_values


def saved(fig, tmp_path, name):
    paths = save_figure(fig, tmp_path, name)
    assert [p.suffix for p in paths] == [".pdf", ".png"] and all(p.stat().st_size > 1000 for p in paths)
    assert paths[0].read_bytes()[:4] == b"%PDF"
    return fig


def bars(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle) and p.get_height() != 0]


def test_weight_curves_are_the_mlp_outputs(tmp_path):
    torch.manual_seed(0)
    nets = {10: WeightNet(8), 20: WeightNet(8)}
    grid = np.linspace(0, 5, 50)
    curves = {s: curve_values(n, grid) for s, n in nets.items()}
    fig = saved(plots.weight_curves(grid, curves, run="meta_s0"), tmp_path, "w")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "per-sample training loss (nats)" and ax.get_ylabel() == "weight (MLP output)"
    assert ax.get_legend() is None and fig.axes[1].get_ylabel() == "training step"  # a colour bar, not 38 entries
    assert "meta_s0" in ax.get_title(loc="left")
    for line, (step, net) in zip(ax.get_lines(), sorted(nets.items())):
        with torch.no_grad():
            expected = net(torch.tensor(grid, dtype=torch.float32)).numpy()
        np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-6)
        assert line.get_label() == f"step {step}"


def test_topic_figure_has_one_bar_per_topic(tmp_path):
    share = {"a": 0.5, "b": 0.3, "c": 0.2}
    gains = {"a": [1.0, 2.0, 3.0], "b": [-2.0, -2.0, -2.0], "c": [0.5, 0.0, 1.0]}
    fig = saved(plots.topic_figure(share, {"a": ["x", "y"]}, gains), tmp_path, "t")
    top, bottom = fig.axes
    assert len(bars(top)) == 3 and bottom.get_ylabel() == "t2v R@1 gain (points)"
    assert [t.get_text() for t in bottom.get_xticklabels()] == ["a · x y", "b", "c"]
    points = [c for c in bottom.containers if isinstance(c, ErrorbarContainer)][0].lines[0]
    np.testing.assert_allclose(np.asarray(points.get_ydata(), dtype=float), [2.0, -2.0, 0.5])  # the mean over seeds
    assert "95% Student-t interval over 3 seeds" in fig.texts[0].get_text()


def test_topic_distribution_sorted_and_complete(tmp_path):
    fig = saved(plots.topic_distribution({"rare": 2, "common": 40, "mid": 10, "also mid": 10},
                                         {"common": "head", "also mid": "head", "mid": "tail", "rare": "tail"}), tmp_path, "d")
    ax = fig.axes[0]
    assert [b.get_height() for b in bars(ax)] == [40, 10, 10, 2]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["common", "also mid", "mid", "rare"]  # ties by name
    assert [t.get_text() for t in ax.get_legend().get_texts()][0].startswith("head")


def test_improvement_scatter_has_a_fitted_trend(tmp_path):
    freq = {f"t{i}": 2 ** i for i in range(8)}
    imp = {f"t{i}": 8 - i + 0.1 * (-1) ** i for i in range(8)}
    fig = saved(plots.improvement_vs_frequency(freq, {t: [v] for t, v in imp.items()}), tmp_path, "s")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "training clips of the topic (log scale)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "5", "10", "20", "50", "100"]
    assert len(ax.collections) >= 2  # points and the confidence band
    slope = np.polyfit(*ax.get_lines()[0].get_data(), 1)[0]
    assert slope < 0


def test_distributions_margin_sweep_methods_and_strips(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"loss": rng.random(100) + 0.01, "weight": rng.random(100), "aligned": rng.random(100) > 0.3,
                       "group": np.where(rng.random(100) > 0.5, "head", "tail"), "step": np.arange(100)})
    fig = saved(plots.loss_weight_distributions(df, run="mama_s0"), tmp_path, "dist")
    assert [a.get_xlabel().split(" (")[0] for a in fig.axes] == ["per-sample loss", "normalised weight"] * 2
    assert "mama_s0, steps 0–99" in fig.texts[0].get_text()
    fig = saved(plots.margin_sweep([0, 0.1, 0.2], [10, 12, 11], baseline=[9.0, 10.0, 11.0], chosen=(0.1, [11.0, 12.0, 13.0])),
                tmp_path, "m")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "margin m (radians)" and ax.lines[1].get_ydata()[0] == 10.0  # InfoNCE's mean
    per_seed = pd.DataFrame({"method": ["infonce"] * 3 + ["mama"] * 3, "seed": [0, 1, 2] * 2,
                             "t2v R@1": [1.0, 2.0, 3.0, 20.0, 21.0, 22.0]})
    ax = saved(plots.method_bars(per_seed, "t2v R@1"), tmp_path, "b").axes[0]
    assert len(bars(ax)) == 2 and [t.get_text() for t in ax.get_xticklabels()] == ["InfoNCE", "MAMA"]
    whiskers = [c for c in ax.containers if isinstance(c, ErrorbarContainer)][0].lines[2][0].get_segments()[0]
    assert ax.get_ylim()[0] == 0 and whiskers[0][1] == 0  # InfoNCE's interval 2 ± 2.5, clipped at 0
    strip = saved(plots.frame_strip(np.zeros((4, 8, 8, 3), np.uint8), "a caption", "attribute:color"), tmp_path, "f")
    assert "attribute:color" in strip._suptitle.get_text()
    fig = saved(plots.logit_geometry([0.0, 0.3], additive=0.3), tmp_path, "g")
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()][1:] == [
        "subtractive, m = 0.3 rad (17°)", "additive (ArcFace-style), cos(θ + m), m = 0.3 rad (17°)"]
    ys = [line.get_ydata() for line in fig.axes[0].get_lines()]
    theta = np.linspace(0, np.pi, 300)
    np.testing.assert_allclose(ys[1], np.cos(theta - 0.3))
    mid = len(theta) // 2  # θ ≈ 90°: subtractive above InfoNCE above additive
    assert ys[1][mid] > ys[0][mid] > ys[2][mid]


@pytest.mark.parametrize("n", [1, 3])
def test_caption_figures(tmp_path, n):
    from PIL import Image

    fig = saved(plots.grids_with_captions([Image.new("RGB", (8, 8))] * n, [("gen", "orig")] * n, ["VLM", "original"]),
                tmp_path, "c")
    assert len(fig.axes) == n and "VLM: gen" in fig.axes[0].texts[0].get_text()
    table = pd.DataFrame({"VLM": [10.0, 20.0], "original": [90.0, 80.0]}, index=["color", "shape"])
    assert len(bars(saved(plots.attribute_accuracy(table), tmp_path, "a").axes[0])) == 4
