"""Figures are rebuilt from saved artifacts only; a missing one names the notebook that makes it; every figure
of a run draws cleanly, in the kit's style."""
import shutil
import warnings

import matplotlib.pyplot as plt
import pytest
from matplotlib.container import ErrorbarContainer
from PIL import Image

from mamc.config import load_config
from mamc.report import style
from mamc.report.figures import FIGURES, build_figures
from mamc.run import MissingArtifact, load_run_config


def test_missing_artifacts_name_their_producer(tmp_path):
    cfg = load_config("smoke", run_dir=str(tmp_path))
    with pytest.raises(MissingArtifact, match="run notebook 01 or `mamc synth`"):
        build_figures(cfg)


def test_missing_training_logs_name_notebook_03(smoke_cfg):
    with pytest.raises(MissingArtifact, match="notebook 03"):
        build_figures(smoke_cfg)



@pytest.mark.slow
def test_every_figure_of_a_smoke_run_renders_cleanly(smoke_run, tmp_path):
    """No warning while drawing; no legend over any axes; every figure with error bars says what they are; and
    the contact sheet holds them all."""
    run = shutil.copytree(smoke_run, tmp_path / "run", symlinks=True)
    cfg = load_run_config(run)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name, make in FIGURES.items():
            fig = make(cfg)
            if fig is None:
                continue
            fig.canvas.draw()
            legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
            for legend in legends:
                box = legend.get_window_extent()
                assert not [ax for ax in fig.axes if box.overlaps(ax.get_window_extent())], f"{name}: legend over data"
            if any(isinstance(c, ErrorbarContainer) for ax in fig.axes for c in ax.containers):
                assert any("interval" in t.get_text() for t in fig.texts), f"{name}: error bars not explained"
            plt.close(fig)
        made = build_figures(cfg)
    assert set(made) == {*(n for n in FIGURES if n in made), "contact_sheet"} and len(made) >= 12
    with Image.open(made["contact_sheet"][1]) as sheet:
        assert sheet.size[0] == pytest.approx((style.PAGE + 0.6) * 150, abs=150)  # a page wide, at print size
