"""Specification of manifest rows: validation with file:line, atomic writes, resumable appends."""
import json

import pytest

from mamc.manifest import ManifestError, append_jsonl, read_manifest, validate_row, write_jsonl

GOOD = {"video_id": "v1", "video": "videos/v1.mp4", "caption": "a cat", "split": "train"}


def test_valid_rows_round_trip(tmp_path):
    rows = [GOOD, dict(GOOD, video_id="v2", split="test", source="vlm", start=1.0, end=2.5)]
    write_jsonl(tmp_path / "m.jsonl", rows)
    assert read_manifest(tmp_path / "m.jsonl") == rows
    assert read_manifest(tmp_path / "m.jsonl", split="test") == rows[1:]


@pytest.mark.parametrize("row, reason", [
    ({"video": "x", "caption": "c", "split": "train"}, "missing field(s) video_id"),
    (dict(GOOD, caption=3), "field 'caption' must be a string, got int"),
    (dict(GOOD, start=3, end=1), "end (1) must be after start (3)"),
    (dict(GOOD, answer="b", candidates=["a", "c"]), "answer 'b' is not among the candidates"),
    ([1, 2], "expected a JSON object, got list"),
    (dict(GOOD, split="Train"), "unknown split 'Train'; known splits: train, meta, val, test, qa_train, qa_val, qa"),
    (dict(GOOD, caption="  "), "empty caption"),
    (dict(GOOD, video_id="../../escape"), "video_id '../../escape' must be a plain name (no '/', '\\\\' or leading '.'): it names cache files"),
    (dict(GOOD, video="videos/other.mp4"), "duplicate video_id 'v1': line 1 gives it 'videos/v1.mp4' (None, None), this row 'videos/other.mp4' (None, None)"),
    (dict(GOOD, split="test"), "video_id 'v1' is in split 'test' here and in 'train' at line 1 (leakage)"),
])
def test_bad_rows_are_rejected_with_file_line_and_reason(tmp_path, row, reason):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + json.dumps(row) + "\n")
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    assert str(err.value) == f"{path}:3: {reason}"
    assert validate_row(GOOD) is None


def test_invalid_json_names_the_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(GOOD) + "\n{oops\n")
    with pytest.raises(ManifestError, match=r"m.jsonl:2: not valid JSON"):
        read_manifest(path)


def test_failed_write_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "m.jsonl"
    write_jsonl(path, [GOOD])
    with pytest.raises(ManifestError, match="row 2: missing field"):
        write_jsonl(path, [GOOD, {"video_id": "v"}])
    assert read_manifest(path) == [GOOD]
    assert [p.name for p in tmp_path.iterdir()] == ["m.jsonl"]  # no temporary file left behind


def test_append_is_line_by_line(tmp_path):
    path = tmp_path / "out" / "c.jsonl"
    append_jsonl(path, GOOD)
    append_jsonl(path, dict(GOOD, video_id="v2"))
    assert [r["video_id"] for r in read_manifest(path)] == ["v1", "v2"]


def test_several_captions_and_qa_rows_of_one_clip_are_fine(tmp_path):
    rows = [GOOD, dict(GOOD, caption="another caption"), dict(GOOD, split="qa", caption="", question="what?", answer="a")]
    assert read_manifest(write_jsonl(tmp_path / "m.jsonl", rows)) == rows


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"video_id": "caf\xe9"}\n')
    with pytest.raises(ManifestError, match=r"m.jsonl:2: not valid UTF-8 \(byte 0xe9 at column 18\)"):
        read_manifest(path)


def test_written_files_respect_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        write_jsonl(tmp_path / "m.jsonl", [GOOD])
    finally:
        os.umask(old)
    assert (tmp_path / "m.jsonl").stat().st_mode & 0o777 == 0o644


def first_conflict_by_hand(rows: list[dict]) -> tuple[int, int] | None:
    """The rule read plainly: each row against the first row of its id, and the first retrieval row of its id."""
    first, first_retrieval = {}, {}
    for i, r in enumerate(rows):
        j = first.setdefault(r["video_id"], i)
        if (rows[j]["video"], rows[j].get("start")) != (r["video"], r.get("start")):
            return i, j
        if r["split"] in ("train", "meta", "val", "test"):
            j = first_retrieval.setdefault(r["video_id"], i)
            if rows[j]["split"] != r["split"]:
                return i, j
    return None


@pytest.mark.parametrize("spill", [None, 3])
def test_the_clip_index_finds_the_first_conflict_in_memory_and_spilled_to_disk(tmp_path, monkeypatch, spill):
    """Rows past `SPILL` go to partition files on disk; the answer is the same, and the files go with the index."""
    import random

    from mamc.manifest import ClipIndex

    if spill:
        monkeypatch.setattr(ClipIndex, "SPILL", spill)
        monkeypatch.setattr(ClipIndex, "PARTS", 4)
    found = set()
    for seed in range(300):
        rng = random.Random(seed)
        rows = [{"video_id": f"v{rng.randrange(6)}", "video": rng.choice(["a.mp4", "a.mp4", "a.mp4", "b.mp4"]),
                 "start": rng.choice([None, None, None, 1.0]), "split": rng.choice(["train", "train", "test", "qa"])}
                for _ in range(rng.randrange(1, 12))]
        with ClipIndex(tmp_path) as index:
            for r in rows:
                index.add(r)
            assert index.first_conflict() == first_conflict_by_hand(rows), rows
        found.add(first_conflict_by_hand(rows) is None)
        assert not list(tmp_path.iterdir())
    assert found == {True, False}  # both kinds of answer were checked
