"""Figures are rebuilt from saved artifacts only; a missing one names the notebook that makes it."""
import pytest

from mamc.config import load_config
from mamc.report.figures import build_figures
from mamc.run import MissingArtifact


def test_missing_artifacts_name_their_producer(tmp_path):
    cfg = load_config("smoke", run_dir=str(tmp_path))
    with pytest.raises(MissingArtifact, match="run notebook 01 or `mamc synth`"):
        build_figures(cfg)


def test_missing_training_logs_name_notebook_03(smoke_cfg):
    with pytest.raises(MissingArtifact, match="notebook 03"):
        build_figures(smoke_cfg)

