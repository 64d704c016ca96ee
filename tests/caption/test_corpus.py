"""The embedded captioner's own corpus: disjoint from the benchmark, balanced, completely described, and the same
clips every time."""
import hashlib
from dataclasses import replace

from mamc.caption.corpus import captioner_corpus, clip_path
from mamc.data.attributes import ATTRIBUTES, parse_attributes
from mamc.data.prepare import load_rows
from mamc.data.synthetic import topic_names


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_corpus_is_disjoint_from_every_benchmark_split(smoke_cfg, tmp_path):
    cfg = replace(smoke_cfg, run_dir=str(tmp_path))
    rows = captioner_corpus(cfg, progress=False)
    benchmark = {_digest(smoke_cfg.data_dir / r["video"]) for r in load_rows(smoke_cfg)}
    assert len(rows) == cfg.captioner_corpus
    assert not {_digest(clip_path(cfg, r)) for r in rows} & benchmark
    assert not {r["video_id"] for r in rows} & {r["video_id"] for r in load_rows(smoke_cfg)}


def test_topics_are_balanced_and_captions_state_every_attribute(smoke_cfg, tmp_path):
    cfg = replace(smoke_cfg, run_dir=str(tmp_path), captioner_corpus=60, captioner_heldout=30)
    rows = captioner_corpus(cfg, progress=False)
    topics = [r["attributes"]["topic"] for r in rows]
    assert set(topics) == set(topic_names()) and all(topics.count(t) == 2 for t in set(topics))
    assert all(parse_attributes(r["caption"])[a] == r["attributes"][a] for r in rows for a in ATTRIBUTES)
    heldout = [r for r in rows if r["part"] == "heldout"]
    assert len(heldout) == 30 and {r["attributes"]["topic"] for r in heldout} == set(topic_names())


def test_the_same_clips_every_time_and_a_kill_before_the_list_regenerates_them(smoke_cfg, tmp_path):
    cfg = replace(smoke_cfg, run_dir=str(tmp_path / "a"))
    first = captioner_corpus(cfg, progress=False)
    digests = [_digest(clip_path(cfg, r)) for r in first]
    listing = tmp_path / "a" / "captioner_corpus" / "corpus.jsonl"
    listing.unlink()  # as if killed before the list was written
    assert captioner_corpus(cfg, progress=False) == first
    assert [_digest(clip_path(cfg, r)) for r in first] == digests
    other = replace(smoke_cfg, run_dir=str(tmp_path / "b"))
    assert [_digest(clip_path(other, r)) for r in captioner_corpus(other, progress=False)] == digests


def test_another_captioner_seed_draws_another_corpus_still_disjoint(smoke_cfg, tmp_path):
    """`captioner_seed` is the captioner's draw: its corpus changes with it, the benchmark does not, and -1 is the
    run's own seed."""
    assert smoke_cfg.captioner_seed == -1 and smoke_cfg.caption_seed == smoke_cfg.seed
    own = captioner_corpus(replace(smoke_cfg, run_dir=str(tmp_path / "own")), progress=False)
    other_cfg = replace(smoke_cfg, run_dir=str(tmp_path / "other"), captioner_seed=7)
    other = captioner_corpus(other_cfg, progress=False)
    assert other_cfg.caption_seed == 7 and [r["attributes"] for r in other] != [r["attributes"] for r in own]
    benchmark = {_digest(smoke_cfg.data_dir / r["video"]) for r in load_rows(smoke_cfg)}
    assert not {_digest(clip_path(other_cfg, r)) for r in other} & benchmark
