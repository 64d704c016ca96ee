"""Every plotting function takes data, returns a Figure, and saves PDF + PNG; content is checked."""
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.patches import Rectangle

from mamc.meta import WeightNet
from mamc.report import plots
from mamc.runs import curve_values


def saved(fig, tmp_path, name):
    paths = plots.save_figure(fig, tmp_path, name)
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
    fig = saved(plots.weight_curves(grid, curves), tmp_path, "w")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "per-sample loss" and ax.get_ylabel() == "weight"
    for line, (step, net) in zip(ax.get_lines(), sorted(nets.items())):
        with torch.no_grad():
            expected = net(torch.tensor(grid, dtype=torch.float32)).numpy()
        np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-6)
        assert line.get_label() == f"step {step}"


def test_topic_figure_has_one_bar_per_topic(tmp_path):
    share = {"a": 0.5, "b": 0.3, "c": 0.2}
    fig = saved(plots.topic_figure(share, {"a": ["x", "y"]}, {"a": 1.0, "b": -2.0, "c": 0.5}), tmp_path, "t")
    ax, ax2 = fig.axes
    assert len(bars(ax)) == 3 and ax2.get_ylabel() == "R@1 improvement (points)"
    assert [t.get_text().split("\n")[0] for t in ax.get_xticklabels()] == ["a", "b", "c"]
    np.testing.assert_allclose(ax2.get_lines()[-1].get_ydata(), [1.0, -2.0, 0.5])


def test_topic_distribution_sorted_and_complete(tmp_path):
    fig = saved(plots.topic_distribution({"rare": 2, "common": 40, "mid": 10}), tmp_path, "d")
    ax = fig.axes[0]
    assert [b.get_height() for b in bars(ax)] == [40, 10, 2]


def test_improvement_scatter_has_a_fitted_trend(tmp_path):
    freq = {f"t{i}": 2 ** i for i in range(8)}
    imp = {f"t{i}": 8 - i + 0.1 * (-1) ** i for i in range(8)}
    fig = saved(plots.improvement_vs_frequency(freq, imp), tmp_path, "s")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "log10 training clips of the topic"
    assert len(ax.collections) >= 2  # points and the confidence band
    slope = np.polyfit(*ax.get_lines()[0].get_data(), 1)[0]
    assert slope < 0


def test_distributions_margin_sweep_methods_and_strips(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"loss": rng.random(100), "weight": rng.random(100), "aligned": rng.random(100) > 0.3,
                       "group": np.where(rng.random(100) > 0.5, "head", "tail")})
    fig = saved(plots.loss_weight_distributions(df), tmp_path, "dist")
    assert [a.get_xlabel() for a in fig.axes[:4]] == ["loss", "weight", "loss", "weight"]
    fig = saved(plots.margin_sweep([0, 0.1, 0.2], [10, 12, 11], [1, 1, 1]), tmp_path, "m")
    assert fig.axes[0].get_xlabel() == "margin m (radians)"
    table = pd.DataFrame({"method": ["a", "b"], "mean": [1.0, 2.0], "lo": [0.5, 1.5], "hi": [1.5, 2.5]})
    assert len(bars(saved(plots.method_bars(table, "R@1"), tmp_path, "b").axes[0])) == 2
    strip = saved(plots.frame_strip(np.zeros((4, 8, 8, 3), np.uint8), "a caption", "attribute:color"), tmp_path, "f")
    assert "attribute:color" in strip._suptitle.get_text()
    fig = saved(plots.logit_geometry([0.0, 0.3], additive=0.3), tmp_path, "g")
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
