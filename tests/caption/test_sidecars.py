"""Caption jobs whose unit is a shard: sidecar shards keyed like the video shards, the same captions as the
manifest-range job (per-video seeds), resumable after a kill at any instant, split across torchrun ranks with
every video captioned once, and one interface for both engines (vLLM's absence said in one line)."""
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import replace

import pytest

from mamc.caption import sidecars
from mamc.caption.jobs import caption_videos
from mamc.caption.vlm import load_captioner
from mamc.data.shards import record_path, shard_clips, shard_name
from mamc.run import Run


def sidecar_rows(folder) -> dict[str, dict]:
    """key → caption row, over every sidecar shard; a key in two shards fails."""
    rows = {}
    for path in sorted(folder.glob("*.tar")):
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                key = member.name.split(".")[0]
                assert key not in rows, f"{key} captioned twice"
                rows[key] = json.loads(tar.extractfile(member).read())
    return rows


@pytest.fixture
def cfg(sharded_cfg, tmp_path):
    """The sharded smoke run seen from a folder of its own (its shards and data linked), so each test captions afresh."""
    (tmp_path / "data").mkdir()
    for name in ("manifest.jsonl", "videos"):
        (tmp_path / "data" / name).symlink_to(sharded_cfg.data_dir / name)
    (tmp_path / "shards").symlink_to(sharded_cfg.run_path / "shards")
    return replace(sharded_cfg, run_dir=str(tmp_path), caption_batch_size=16)


def test_sidecars_hold_the_captions_of_the_manifest_job_keyed_like_the_video_shards(cfg, tiny_checkpoint):
    cap = load_captioner(str(tiny_checkpoint))
    stats = sidecars.caption_shards(cfg, captioner=cap, progress=False)
    out = Run(cfg).caption_shards("train")
    assert stats["complete"] and stats["written"] == stats["shards"] == 3
    sizes = json.loads((out / "sizes.json").read_text())
    rows = sidecar_rows(out)
    records = [json.loads(record_path(out, i).read_text()) for i in range(3)]
    assert sum(sizes.values()) == len(rows) == stats["captioned"] and sum(len(r["failures"]) for r in records) == stats["failed"]
    assert stats["captioned"] + stats["failed"] == 192
    clips = [c for i in range(3) for c in shard_clips(Run(cfg).shards("train"), i)]
    failed = {f["video_id"] for r in records for f in r["failures"]}
    assert {k: r["video_id"] for k, r in rows.items()} == {c["key"]: c["id"] for c in clips if c["id"] not in failed}
    caption_videos(cfg, captioner=cap, progress=False)
    jsonl = {json.loads(line)["video_id"]: json.loads(line) for line in Run(cfg).path("captions").read_text().splitlines()}
    assert {r["video_id"]: r["caption"] for r in rows.values()} == {v: r["caption"] for v, r in jsonl.items()}
    row = next(iter(rows.values()))
    assert row["provenance"]["engine"] == "transformers" and row["sample_seed"] == jsonl[row["video_id"]]["sample_seed"]


@pytest.mark.parametrize("instant", ["inside a sidecar", "between a sidecar and its record"])
def test_a_kill_at_the_worst_instant_then_a_resume_leaves_every_video_captioned_once(cfg, tiny_checkpoint, monkeypatch, instant):
    cap = load_captioner(str(tiny_checkpoint))
    whole = replace(cfg, run_dir=str(cfg.run_path / "whole"))
    for name in ("data", "shards"):
        (whole.run_path / name).parent.mkdir(parents=True, exist_ok=True)
        (whole.run_path / name).symlink_to(cfg.run_path / name)
    sidecars.caption_shards(cfg, captioner=cap, progress=False)
    resumed = replace(cfg, run_dir=str(cfg.run_path / "resumed"))
    (resumed.run_path / "data").mkdir(parents=True)
    for name in ("manifest.jsonl", "videos"):
        (resumed.run_path / "data" / name).symlink_to(cfg.data_dir / name)
    (resumed.run_path / "shards").symlink_to(cfg.run_path / "shards")
    import mamc.data.shards as shards

    target = "atomic_write" if instant == "inside a sidecar" else "write_json"
    real, calls = getattr(shards, target), []

    def killed(path, *args, **kw):
        calls.append(path)
        if len(calls) == 2:
            if target == "atomic_write":  # half a tar written, then the process dies
                return real(path, lambda fh: (fh.write(b"partial"), (_ for _ in ()).throw(KeyboardInterrupt())))
            raise KeyboardInterrupt
        return real(path, *args, **kw)

    monkeypatch.setattr(shards, target, killed)
    with pytest.raises(KeyboardInterrupt):
        sidecars.caption_shards(resumed, captioner=cap, progress=False)
    monkeypatch.setattr(shards, target, real)
    done = sidecars.caption_shards(resumed, captioner=cap, progress=False)
    assert done["written"] == 2 and done["complete"]
    a, b = Run(cfg).caption_shards("train"), Run(resumed).caption_shards("train")
    for name in ["sizes.json", *(shard_name(i) for i in range(3))]:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert not [p for p in b.iterdir() if p.name.startswith(".")]


def test_the_vllm_engine_says_in_one_line_why_it_cannot_run_here(cfg, tiny_checkpoint):
    from mamc.caption.vllm_engine import load_vllm_captioner, vllm_available

    ok, message = vllm_available()
    if ok:
        pytest.skip("vLLM and a GPU are here")
    with pytest.raises(RuntimeError) as err:
        load_vllm_captioner(str(tiny_checkpoint))
    assert str(err.value) == message and "\n" not in message and "caption_engine=transformers" in message
    done = subprocess.run([sys.executable, "-m", "mamc", "caption", "--run", str(cfg.run_path), "--shards", "--model",
                           str(tiny_checkpoint), "--profile", "smoke", "--param", "caption_engine=vllm"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1] == f"mamc caption: error: {message}"


@pytest.mark.slow
def test_torchrun_two_ranks_killed_and_resumed_caption_every_video_once(cfg, tiny_checkpoint):
    """The job launched like training, killed with SIGKILL once a sidecar is finished, launched again: every video of
    the shards is captioned exactly once, with the captions one process gives."""
    sidecars.caption_shards(cfg, captioner=load_captioner(str(tiny_checkpoint)), progress=False)
    run = cfg.run_path / "torchrun"
    (run / "data").mkdir(parents=True)
    for name in ("manifest.jsonl", "videos"):
        (run / "data" / name).symlink_to(cfg.data_dir / name)
    (run / "shards").symlink_to(cfg.run_path / "shards")
    torchrun = [os.path.join(os.path.dirname(sys.executable), "torchrun"), "--standalone", "--nproc_per_node", "2", "-m",
                "mamc", "--", "caption", "--run", str(run), "--profile", "smoke", "--shards", "--model", str(tiny_checkpoint),
                "--param", "data_format=shards", "--param", "shard_size=50", "--param", "caption_batch_size=16"]
    proc = subprocess.Popen(torchrun, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    out = run / "data" / "caption_shards" / "train"
    deadline = time.time() + 300
    while not list(out.glob("0000?.json")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "sizes.json").exists()
    again = subprocess.run(torchrun, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    theirs, ours = sidecar_rows(out), sidecar_rows(Run(cfg).caption_shards("train"))
    assert {k: r["caption"] for k, r in theirs.items()} == {k: r["caption"] for k, r in ours.items()}
