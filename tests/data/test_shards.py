"""WebDataset shards of a split's clips: what the frame cache holds, in the field's format, written atomically,
the same bytes every time, split across processes by range, decode failures recorded, resumable after a kill."""
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import replace

import numpy as np
import pytest

from mamc.data.shards import make_shards, record_path, shard_name
from mamc.data.video import decode_clip
from mamc.manifest import read_manifest
from mamc.run import Run


def shard(cfg, folder, **kw):
    return make_shards(Run(cfg).path("manifest"), "train", folder, cfg.data_dir, cfg.clip_frames, cfg.frame_size,
                       kw.pop("shard_size", 50), progress=False, **kw)


def members(path):
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_shards_hold_each_clip_once_with_its_captions_in_webdataset_layout(smoke_cfg, tmp_path):
    counts = shard(smoke_cfg, tmp_path)
    rows = read_manifest(Run(smoke_cfg).path("manifest"), "train")
    videos = list(dict.fromkeys(r["video_id"] for r in rows))
    assert counts == {"split": "train", "clips": len(videos), "shards": 3, "written": 3, "samples": len(videos),
                      "failed": 0, "complete": True}
    sizes = json.loads((tmp_path / "sizes.json").read_text())
    assert sizes == {shard_name(0): 50, shard_name(1): 50, shard_name(2): len(videos) - 100}  # the last takes the rest
    first = members(tmp_path / shard_name(1))
    assert sorted(first)[:2] == ["000000050.frames.npy", "000000050.json"]  # key = clip number, no dots
    meta = json.loads(first["000000050.json"])
    row = next(r for r in rows if r["video_id"] == videos[50])
    assert meta["id"] == videos[50] and meta["captions"] == [r["caption"] for r in rows if r["video_id"] == videos[50]]
    assert (meta["split"], meta["topic"], meta["source"]) == ("train", row["topic"], row.get("source", "original"))
    frames = np.load(io.BytesIO(first["000000050.frames.npy"]))
    cache_would_hold = decode_clip(smoke_cfg.data_dir / row["video"], row, smoke_cfg.clip_frames, smoke_cfg.frame_size)
    assert np.array_equal(frames, cache_would_hold)


def test_the_same_inputs_give_the_same_bytes_and_ranges_add_up_to_the_whole(smoke_cfg, tmp_path):
    shard(smoke_cfg, tmp_path / "whole")
    parts = tmp_path / "parts"
    assert shard(smoke_cfg, parts, shards=slice(2, None))["complete"] is False  # sizes.json waits for every shard
    assert not (parts / "sizes.json").exists()
    assert shard(smoke_cfg, parts, shards=slice(0, 2))["complete"] is True
    for i in range(3):
        assert (parts / shard_name(i)).read_bytes() == (tmp_path / "whole" / shard_name(i)).read_bytes()
    assert (parts / "sizes.json").read_bytes() == (tmp_path / "whole" / "sizes.json").read_bytes()
    assert shard(smoke_cfg, parts)["written"] == 0  # finished shards are skipped


def test_an_undecodable_clip_is_recorded_in_its_shards_record_and_left_out(smoke_cfg, tmp_path):
    data = tmp_path / "data"
    rows = read_manifest(Run(smoke_cfg).path("manifest"), "train")
    broken = rows[60]["video"]
    (data / broken).parent.mkdir(parents=True)
    (data / broken).write_bytes(b"not a video")
    for r in {r["video"] for r in rows} - {broken}:
        (data / r).parent.mkdir(parents=True, exist_ok=True)
        (data / r).symlink_to(smoke_cfg.data_dir / r)
    cfg = replace(smoke_cfg, run_dir=str(tmp_path / "run"))
    (tmp_path / "run" / "data").mkdir(parents=True)
    (tmp_path / "run" / "data" / "manifest.jsonl").symlink_to(Run(smoke_cfg).path("manifest"))
    counts = make_shards(Run(cfg).path("manifest"), "train", tmp_path / "shards", data, cfg.clip_frames, cfg.frame_size,
                         50, progress=False)
    record = json.loads(record_path(tmp_path / "shards", 1).read_text())
    assert counts["failed"] == 1 and record["samples"] == record["clips"] - 1 == 49
    assert record["failures"][0]["video_id"] == rows[60]["video_id"] and "cannot decode" in record["failures"][0]["reason"]
    assert json.loads((tmp_path / "shards" / "sizes.json").read_text())[shard_name(1)] == 49


@pytest.mark.parametrize("instant", ["inside a shard", "between a shard and its record"])
def test_an_interruption_at_the_worst_instant_then_a_resume_gives_the_same_shards(smoke_cfg, tmp_path, monkeypatch, instant):
    import mamc.data.shards as shards

    shard(smoke_cfg, tmp_path / "whole")
    target = "_npy" if instant == "inside a shard" else "write_json"
    real, calls = getattr(shards, target), []

    def killed(*args, **kw):
        calls.append(1)
        if len(calls) == (75 if target == "_npy" else 2):
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(shards, target, killed)
    with pytest.raises(KeyboardInterrupt):
        shard(smoke_cfg, tmp_path / "resumed")
    monkeypatch.setattr(shards, target, real)
    assert not (tmp_path / "resumed" / "sizes.json").exists()
    assert shard(smoke_cfg, tmp_path / "resumed")["written"] == 2  # shard 0 was finished; 1 is made again
    for name in ["sizes.json", *(shard_name(i) for i in range(3))]:
        assert (tmp_path / "resumed" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "resumed").iterdir() if p.name.startswith(".")) == []


@pytest.mark.slow
def test_mamc_shard_killed_by_sigkill_resumes_under_two_ranks(smoke_cfg, tmp_path):
    """A real SIGKILL once the first shard is finished; the same command, then run as two srun-style ranks, ends
    with every shard identical to an uninterrupted run's."""
    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    (run / "data" / "manifest.jsonl").symlink_to(Run(smoke_cfg).path("manifest"))
    (run / "data" / "videos").symlink_to(smoke_cfg.data_dir / "videos")
    cmd = [sys.executable, "-m", "mamc", "shard", "--run", str(run), "--profile", "smoke", "--splits", "train", "--param",
           "shard_size=20"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = Run(replace(smoke_cfg, run_dir=str(run))).shards("train")
    deadline = time.time() + 120
    while not record_path(folder, 0).exists() and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (folder / "sizes.json").exists()
    ranks = [subprocess.Popen(cmd, env={**os.environ, "SLURM_PROCID": str(r), "SLURM_NTASKS": "2", "SLURM_LOCALID": str(r),
                                         "SLURM_JOB_ID": "1"},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    for p in ranks:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    whole = tmp_path / "whole"
    make_shards(Run(smoke_cfg).path("manifest"), "train", whole, smoke_cfg.data_dir, smoke_cfg.clip_frames,
                smoke_cfg.frame_size, 20, progress=False)
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in whole.iterdir())
    for p in whole.iterdir():
        assert (folder / p.name).read_bytes() == p.read_bytes(), p.name
