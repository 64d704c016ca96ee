"""Checkpoints are committed atomically: a training process killed at any instant of a save resumes to the
weights, optimiser, RNG state and logs of an uninterrupted run, bit for bit."""
import shutil
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from mamc.checkpoint import CheckpointError, checkpoint_tensors, read_record
from mamc.run import Run
from mamc.train import train

# Runs in a child process: training that SIGKILLs itself at one instant of the save at step 4.
CHILD = r"""
import os, signal, sys
from dataclasses import replace
import mamc.checkpoint as ck, mamc.logs as tr
from mamc.config import load_config

run_dir, point = sys.argv[1], sys.argv[2]
cfg = replace(load_config("smoke", run_dir=run_dir), steps=6, ckpt_every=2, eval_every=2)
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
write, commit, append = ck._write_tensors, ck._commit, tr.append_jsonl

def write_tensors(path, tensors):
    if path.name == "state_000004.safetensors" and point == "writing-tensors":
        path.with_name(f".{path.name}.tmp").write_bytes(b"half a safetensors file")
        die()
    write(path, tensors)
    if path.name == "state_000004.safetensors" and point == "before-commit":
        die()

def commit_record(directory, record):
    commit(directory, record)
    if record["step"] == 4 and point == "after-commit":
        die()

def append_rows(path, *rows):
    if point == "writing-logs" and any(r["step"] == 3 for r in rows):
        append(path, *[r for r in rows if r["step"] < 3])
        with open(path, "a") as fh:
            fh.write('{"step": 3, "lo')
        die()
    append(path, *rows)

ck._write_tensors, ck._commit, tr.append_jsonl = write_tensors, commit_record, append_rows
from mamc.train import train
train(cfg, "meta", name="killed", progress=False)
"""


@pytest.fixture(scope="module")
def uninterrupted(smoke_cfg):
    cfg = replace(smoke_cfg, steps=6, ckpt_every=2, eval_every=2)
    train(cfg, "meta", name="kill_reference", progress=False)
    return cfg


@pytest.mark.parametrize("point", ["writing-logs", "writing-tensors", "before-commit", "after-commit"])
def test_kill_during_save_resumes_bit_identical(uninterrupted, point):
    cfg = uninterrupted
    killed = subprocess.run([sys.executable, "-c", CHILD, str(cfg.run_path), point], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    expected_step = 4 if point == "after-commit" else 2
    assert read_record(Run(cfg).checkpoints("killed"))["step"] == expected_step
    summary = train(cfg, "meta", name="killed", progress=False)
    assert summary["completed"]
    a, b = (checkpoint_tensors(Run(cfg).checkpoints(n)) for n in ("kill_reference", "killed"))
    assert a.keys() == b.keys() and "rng.torch" in a
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    for log in ("samples.csv", "scalars.jsonl", "scalars.csv"):
        assert (Run(cfg).logs("kill_reference") / log).read_bytes() == (Run(cfg).logs("killed") / log).read_bytes(), log
    assert sorted(p.name for p in Run(cfg).checkpoints("killed").glob("state_*")) == ["state_000006.safetensors"]
    shutil.rmtree(Run(cfg).checkpoints("killed"))
    shutil.rmtree(Run(cfg).logs("killed"))


def test_a_damaged_checkpoint_is_refused_by_name(uninterrupted):
    directory = Run(uninterrupted).checkpoints("kill_reference")
    record = read_record(directory)
    damaged = directory.parent / "damaged"
    damaged.mkdir()
    (damaged / "last.json").write_text((directory / "last.json").read_text())
    data = (directory / record["tensors"]).read_bytes()
    (damaged / record["tensors"]).write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    with pytest.raises(CheckpointError, match="does not match the SHA-256"):
        checkpoint_tensors(damaged)


def test_the_gpus_rng_state_is_saved_and_restored(tmp_path, monkeypatch):
    """On CUDA the checkpoint carries the current GPU's generator too (dropout, random crops on the GPU)."""
    from mamc import checkpoint

    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda: torch.arange(16, dtype=torch.uint8))
    monkeypatch.setattr(torch.cuda, "set_rng_state", restored.append)
    model, net = torch.nn.Linear(2, 2), torch.nn.Linear(1, 1)
    opt, wopt = torch.optim.AdamW(model.parameters()), torch.optim.Adam(net.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    checkpoint.save_checkpoint(tmp_path, 1, model, opt, sched, net, wopt)
    assert torch.equal(checkpoint_tensors(tmp_path)["rng.cuda"], torch.arange(16, dtype=torch.uint8))
    checkpoint.load_checkpoint(tmp_path, model, opt, sched, net, wopt)
    assert len(restored) == 1 and torch.equal(restored[0], torch.arange(16, dtype=torch.uint8))
