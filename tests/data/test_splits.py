"""Val and meta splits carved out of a public dataset's training data: whole videos, concept-balanced meta
chosen by caption agreement (or at random within concept when a video has one caption), seeded."""
from collections import Counter

import pytest

from mamc.data.splits import carve_splits
from mamc.manifest import read_manifest, write_jsonl

WORDS = ["dog", "cat", "car", "song", "chef", "ball", "rain", "boat", "kid", "dance", "bike", "tree"]


def msrvtt_like(n_videos: int = 30, captions: int = 4) -> list[dict]:
    """Three categories; the first two videos of each agree on every caption, the others do not."""
    rows = []
    for v in range(n_videos):
        concept = v % 3
        for k in range(captions):
            agree = v < 6
            words = [WORDS[concept], WORDS[3 + concept]] if agree else [WORDS[(v + 5 * k) % 12], WORDS[(3 * v + k) % 12]]
            rows.append({"video_id": f"video{v}", "video": f"videos/video{v}.mp4", "caption": f"a {words[0]} and a {words[1]}",
                         "split": "train", "topic": f"category {concept}"})
    rows += [{"video_id": "video99", "video": "videos/video99.mp4", "caption": "a test", "split": "test", "topic": "category 0"}]
    return rows


def carved(tmp_path, rows, **kw):
    """The carved rows as a list, and the summary; the staging file is gone once they are read."""
    stream, summary = carve_splits(rows, tmp_path, **kw)
    out = list(stream)
    assert not list(tmp_path.glob(".carve*"))
    return out, summary


def test_meta_is_concept_balanced_clean_and_one_caption_per_video(tmp_path):
    rows, summary = carved(tmp_path, msrvtt_like(), n_val=5, meta_per_concept=2, seed=0)
    meta = [r for r in rows if r["split"] == "meta"]
    assert Counter(r["topic"] for r in meta) == {"category 0": 2, "category 1": 2, "category 2": 2}
    assert sorted(r["video_id"] for r in meta) == [f"video{v}" for v in range(6)]  # the videos whose captions agree
    assert summary["meta_selection"] == "caption agreement" and summary["meta_other_captions_dropped"] == 6 * 3
    val_videos = {r["video_id"] for r in rows if r["split"] == "val"}
    assert len(val_videos) == 5 and all(sum(r["video_id"] == v for r in rows) == 4 for v in val_videos)
    read_manifest(write_jsonl(tmp_path / "m.jsonl", rows))  # no video in two splits, every row valid
    assert carved(tmp_path, msrvtt_like(), n_val=5, meta_per_concept=2, seed=0)[0] == rows
    assert carved(tmp_path, msrvtt_like(), n_val=5, meta_per_concept=2, seed=1)[0] != rows
    assert carved(tmp_path, msrvtt_like()[::-1], n_val=5, meta_per_concept=2, seed=0)[0] == rows[::-1]  # order of rows: no matter


def test_without_labels_concepts_come_from_a_topic_model_and_meta_is_drawn_within_them(tmp_path):
    rows = [{"video_id": f"v{i}", "video": f"v{i}.mp4", "caption": f"a {WORDS[i % 4]} near a {WORDS[4 + i % 4]} today",
             "split": "train"} for i in range(40)]
    rows, summary = carved(tmp_path, rows, n_val=4, meta_per_concept=1, seed=0, n_topics=4)
    assert all(r.get("topic", "").startswith("topic ") for r in rows)
    assert summary["meta_selection"].startswith("random within concept") and summary["meta_videos"] == summary["concepts"]


def test_too_few_videos_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="3 training videos cannot give a val split of 3"):
        carve_splits(msrvtt_like(3, 1), tmp_path, n_val=3, meta_per_concept=0)
    assert not list(tmp_path.glob(".carve*"))


def test_ingest_carves_the_splits_it_is_asked_for(tmp_path):
    import json

    from mamc.data.ingest import ingest

    data = tmp_path / "MSRVTT_data.json"
    data.write_text(json.dumps({
        "videos": [{"video_id": f"video{i}", "category": i % 2} for i in range(12)],
        "sentences": [{"video_id": f"video{i}", "caption": f"caption {i} {k}"} for i in range(12) for k in range(2)]}))
    ingest("msrvtt", [str(data)], tmp_path / "m.jsonl", val=2, meta_per_concept=1, seed=0)
    rows = read_manifest(tmp_path / "m.jsonl")
    counts = Counter(r["split"] for r in rows)
    assert counts["meta"] == 2 and counts["val"] == 2 * 2 and counts["train"] == 2 * (12 - 2 - 2)
    assert {r["topic"] for r in rows} == {"category 0", "category 1"}
