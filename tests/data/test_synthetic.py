"""The embedded corpus is a measuring instrument: known topics, long tail, known noise, clean balanced splits."""
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from mamc.data.attributes import COLORS
from mamc.data.synthetic import generate_corpus, render, sample_attributes, zipf_probs
from mamc.manifest import read_manifest


def test_splits_sizes_balance_and_noise(smoke_cfg):
    rows = read_manifest(smoke_cfg.data_dir / "manifest.jsonl")
    by = Counter(r["split"] for r in rows)
    assert by["train"] == smoke_cfg.n_train and by["test"] == smoke_cfg.n_test and by["qa"] == smoke_cfg.n_qa
    for split in ("meta", "test", "val"):
        part = [r for r in rows if r["split"] == split]
        assert all(r["aligned"] for r in part)
        counts = Counter(r["topic"] for r in part).values()
        assert max(counts) - min(counts) <= 1
    train = [r for r in rows if r["split"] == "train"]
    noisy = [r for r in train if not r["aligned"]]
    assert 0.1 < len(noisy) / len(train) < 0.5
    assert all(r["caption"] != r["true_caption"] or r["noise"] == "other_clip" for r in noisy)
    assert all(r["caption"] == r["true_caption"] for r in train if r["aligned"])


def test_train_topics_are_long_tailed(smoke_cfg):
    train = [r for r in read_manifest(smoke_cfg.data_dir / "manifest.jsonl", "train")]
    counts = sorted(Counter(r["topic"] for r in train).values(), reverse=True)
    assert counts[0] > 3 * counts[-1]
    p = zipf_probs(10, 1.2)
    assert np.isclose(p.sum(), 1) and (np.diff(p) < 0).all()


def _tree_hashes(root):
    import hashlib

    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_corpus_is_the_same_bytes_whatever_the_load_and_threads(smoke_cfg, tmp_path):
    """Every MP4 and manifest byte is a function of (profile, seed): a second generation in another process,
    with other thread settings and both cores busy, writes identical files."""
    import os
    import subprocess
    import sys

    small = replace(smoke_cfg, n_train=24, n_val=4, n_test=4, n_qa=4, n_meta_per_topic=1)
    generate_corpus(small, tmp_path / "a", progress=False)
    script = ("import sys; from dataclasses import replace; from mamc.config import load_config; "
              "from mamc.data.synthetic import generate_corpus; "
              "generate_corpus(replace(load_config('smoke'), n_train=24, n_val=4, n_test=4, n_qa=4, n_meta_per_topic=1),"
              " sys.argv[1], progress=False)")
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        env = dict(os.environ, OMP_NUM_THREADS="3", MKL_NUM_THREADS="3")
        subprocess.run([sys.executable, "-c", script, str(tmp_path / "b")], check=True, env=env, timeout=300)
    finally:
        for b in burners:
            b.kill()
    a, b = _tree_hashes(tmp_path / "a"), _tree_hashes(tmp_path / "b")
    assert len(a) > 40 and a == b


def test_clips_are_real_h264_and_show_their_attributes(smoke_cfg):
    row = read_manifest(smoke_cfg.data_dir / "manifest.jsonl", "test")[0]
    import av

    with av.open(str(smoke_cfg.data_dir / row["video"])) as c:
        assert c.streams.video[0].codec_context.name == "h264"
    rng = np.random.default_rng(0)
    attrs = dict(sample_attributes("red circle", rng), direction="right", change_to="blue", size="large")
    frames = render(attrs, 8, 32, rng).astype(int)
    red, blue = np.array(COLORS["red"]), np.array(COLORS["blue"])
    centre_x = lambda f, c: np.argwhere(np.abs(f - c).sum(-1) < 30)[:, 1].mean()  # noqa: E731
    assert centre_x(frames[0], red) < centre_x(frames[-1], blue)


def test_qa_answers_come_from_ground_truth(smoke_cfg):
    rows = read_manifest(smoke_cfg.data_dir / "manifest.jsonl")
    clips = {r["video_id"]: r for r in rows if r["split"] in ("train", "test")}
    for q in (r for r in rows if r["split"] in ("qa", "qa_train")):
        assert q["answer"] == clips[q["video_id"]]["attributes"][q["qtype"]] and q["answer"] in q["candidates"]
    assert (smoke_cfg.data_dir / "DATA_CARD.md").read_text().count("| train |") == 1


def test_parse_attributes_reads_every_template_back():
    from mamc.data.attributes import ATTRIBUTES, parse_attributes
    from mamc.data.synthetic import describe

    rng = np.random.default_rng(1)
    for _ in range(200):
        attrs = sample_attributes(str(rng.choice(["red circle", "blue cross", "white triangle"])), rng)
        parsed = parse_attributes(describe(attrs, rng))
        for a in ("color", "shape", "direction"):
            assert parsed[a] == attrs[a]
        assert parsed["size"] in (attrs["size"], None)
    assert parse_attributes("a thing moves")["color"] is None
    assert set(parse_attributes("")) == set(ATTRIBUTES)


def test_split_summary_reports_noise_and_balance(smoke_cfg):
    import json

    from mamc.data.card import split_summary

    table = split_summary(json.loads((smoke_cfg.data_dir / "corpus.json").read_text()))
    assert table.loc["train", "rows"] == smoke_cfg.n_train and table.loc["test", "misaligned"] == 0
    assert table.loc["meta", "max rows/topic"] == table.loc["meta", "min rows/topic"] == smoke_cfg.n_meta_per_topic
    assert ".0 " not in table.drop(columns="misaligned (%)").to_string() + " "  # counts print as integers


def test_synth_never_writes_over_an_ingested_dataset(smoke_cfg, tmp_path):
    import pytest

    from mamc.manifest import write_jsonl

    ingested = tmp_path / "data" / "manifest.jsonl"
    write_jsonl(ingested, [{"video_id": "video7", "video": "videos/video7.mp4", "caption": "a man sings", "split": "train"}])
    before = ingested.read_bytes()
    with pytest.raises(ValueError, match="ingested dataset"):
        generate_corpus(replace(smoke_cfg, run_dir=str(tmp_path)), progress=False)
    with pytest.raises(ValueError, match="ingested dataset 'MSR-VTT'"):
        generate_corpus(replace(smoke_cfg, run_dir=str(tmp_path / "other"), dataset="MSR-VTT"), progress=False)
    assert ingested.read_bytes() == before and not (tmp_path / "data" / "videos").exists()


def test_retrieval_ceiling_counts_the_clips_a_caption_cannot_tell_apart():
    from mamc.data.attributes import retrieval_ceiling

    def clip(vid, size, caption, change=None):
        attrs = {"shape": "circle", "color": "red", "direction": "left", "size": size, "change_to": change}
        return {"video_id": vid, "caption": caption, "attributes": attrs}

    rows = [clip("a", "large", "a large red ball rolls left."), clip("b", "small", "a small red ball rolls left."),
            clip("c", "small", "we see a red ball that rolls left."),  # no size: a, b and c all fit
            clip("d", "small", "a red ball rolls left and then turns blue.", change="blue")]
    ceiling = retrieval_ceiling(rows, ks=(1, 2))
    # a: only a (large, no change); b: b and c; c: a, b, c; d: only d.
    assert ceiling["R@1"] == pytest.approx(100 * (1 + 1 / 2 + 1 / 3 + 1) / 4)
    assert ceiling["R@2"] == pytest.approx(100 * (1 + 1 + 2 / 3 + 1) / 4)
    assert retrieval_ceiling([{"video_id": "v", "caption": "a dog"}]) is None
