"""Where a run's inputs come from."""
import pytest

from mamc.config import load_config
from mamc.manifest import read_manifest
from mamc.run import MissingArtifact


def test_public_dataset_runs_require_an_ingested_manifest(tmp_path):
    from mamc.data.prepare import prepare_corpus

    cfg = load_config("paper", run_dir=str(tmp_path))
    with pytest.raises(MissingArtifact, match="mamc ingest <dataset>"):
        prepare_corpus(cfg)
    smoke = load_config("smoke", run_dir=str(tmp_path / "s"), n_train=16, n_val=4, n_test=8, n_qa=4, n_meta_per_topic=1)
    rows = read_manifest(prepare_corpus(smoke))  # the embedded corpus is generated instead
    assert sum(r["split"] == "train" for r in rows) == 16 and sum(r["split"] == "test" for r in rows) == 8


def test_an_ingested_dataset_gets_its_statistics_and_data_card(tmp_path):
    """Notebook 01 on a public dataset: corpus.json (topics for head/tail) and a data card, no ground truth."""
    from mamc.config import load_config
    from mamc.data.card import examples
    from mamc.data.prepare import prepare_corpus
    from mamc.manifest import write_jsonl
    from mamc.run import Run

    rows = [{"video_id": f"v{i}", "video": f"videos/v{i}.mp4", "caption": f"caption {k}", "split": "train" if i else "test",
             "topic": f"category {i % 2}"} for i in range(3) for k in range(2)]
    cfg = load_config("paper", run_dir=str(tmp_path))
    write_jsonl(Run(cfg).path("manifest"), rows)
    prepare_corpus(cfg)
    stats = Run(cfg).read("corpus")
    assert stats["splits"]["train"]["videos"] == 2 and stats["splits"]["train"]["topics"] == {"category 1": 2, "category 0": 2}
    assert stats["splits"]["train"]["misaligned"] is None
    card = Run(cfg).need("data card").read_text()
    assert card.startswith("# MSR-VTT — data card") and "not available for this dataset" in card
    assert [(r["video_id"], noise) for r, noise in examples(rows, 2)] == [("v0", None), ("v1", None)]
