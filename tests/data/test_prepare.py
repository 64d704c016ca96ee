"""Where a run's inputs come from."""
import pytest

from mamc.config import load_config
from mamc.run import MissingArtifact


def test_public_dataset_runs_require_an_ingested_manifest(tmp_path):
    from mamc.data.prepare import prepare_corpus

    cfg = load_config("paper", run_dir=str(tmp_path))
    with pytest.raises(MissingArtifact, match="mamc ingest <dataset>"):
        prepare_corpus(cfg)
    smoke = load_config("smoke", run_dir=str(tmp_path / "s"), n_train=16, n_val=4, n_test=8, n_qa=4, n_meta_per_topic=1)
    assert prepare_corpus(smoke).exists()
