"""Specification of the trainer: exact resume, DDP equivalence, and the artifacts later notebooks read."""
import json
import os
import socket
from dataclasses import replace

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from mamc import train as trainer
from mamc.checkpoint import checkpoint_tensors
from mamc.config import METHODS
from mamc.manifest import read_manifest, write_jsonl
from mamc.run import Run
from mamc.runs import weight_net_snapshots
from mamc.train import meta_batch_size, train


def _tensors(cfg, name):
    return checkpoint_tensors(Run(cfg).checkpoints(name))


@pytest.mark.parametrize("data", ["cache", "shards"])
def test_interrupted_and_resumed_run_equals_uninterrupted(smoke_cfg, request, data):
    """Also from shards, and resumed with DataLoader workers where the whole run had none."""
    cfg = replace(smoke_cfg if data == "cache" else request.getfixturevalue("sharded_cfg"), steps=6, ckpt_every=3,
                  eval_every=3)
    train(cfg, "meta", name=f"whole_{data}", progress=False)
    first = train(cfg, "meta", name=f"split_{data}", progress=False, stop_after=4)
    assert not first["completed"]
    second = train(replace(cfg, num_workers=2), "meta", name=f"split_{data}", progress=False)
    assert second["completed"]
    a, b = _tensors(cfg, f"whole_{data}"), _tensors(cfg, f"split_{data}")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    samples = (Run(cfg).logs(f"split_{data}") / "samples.csv").read_text().splitlines()[1:]
    steps = [int(line.split(",")[0]) for line in samples]
    assert steps == sorted(steps) and len(steps) == 6 * cfg.batch_size


def test_a_run_ends_at_its_validation_plateau_and_stays_ended(smoke_cfg):
    """With a learning rate of ~0 validation never improves after the first check: `patience` checks later the
    run ends, keeps its best step, and neither a rerun nor a resume without the summary trains further."""
    cfg = replace(smoke_cfg, steps=40, eval_every=2, ckpt_every=40, patience=2, lr=1e-12, warmup_steps=0)
    summary = train(cfg, "infonce", name="plateau", progress=False)
    assert summary["plateau"] and summary["completed"] and summary["last_step"] == 6 and summary["best"]["step"] == 2
    assert train(cfg, "infonce", name="plateau", progress=False) == summary
    Run(cfg).path("summary", "plateau").unlink()  # killed after the last checkpoint, before the summary
    again = train(cfg, "infonce", name="plateau", progress=False)
    assert again["last_step"] == 6 and again["plateau"] and again["best"] == summary["best"]
    scalars = [json.loads(line) for line in Run(cfg).path("scalars", "plateau").read_text().splitlines()]
    assert [r["step"] for r in scalars] == list(range(6))


def test_the_plateau_is_judged_on_the_recent_mean_not_on_one_lucky_validation():
    from mamc.train import plateau_watch

    def last_best(values, window):
        watch = {}
        for step, value in enumerate(values, 1):
            watch = plateau_watch(watch, value, step, window)
        return watch["step"]

    rising_with_a_spike = [100, 150, 200, 240, 205, 210, 215, 220, 225, 230]
    assert last_best(rising_with_a_spike, window=1) == 4  # one spike, and a rising run would look finished
    assert last_best(rising_with_a_spike, window=4) == 10
    assert last_best([100, 200, 250, 250, 249, 250, 248, 250, 249], window=4) == 6  # a real plateau is still found


def test_the_constant_schedule_does_not_depend_on_the_step_limit():
    """A run that ends at its plateau must not have its rate run out because of the limit: under the constant
    schedule two limits give the same rates; the cosine schedule decays to zero at whichever limit it is given."""
    from mamc.config import load_config
    from mamc.train import lr_lambda

    short, long = (load_config("default", steps=n, warmup_steps=10) for n in (1000, 4000))
    assert [lr_lambda(short)(s) for s in (0, 9, 10, 999)] == [0.1, 1.0, 1.0, 1.0]
    assert [lr_lambda(short)(s) for s in range(1000)] == [lr_lambda(long)(s) for s in range(1000)]
    cosine = replace(short, lr_schedule="cosine")
    assert lr_lambda(cosine)(10) == 1.0 and lr_lambda(cosine)(1000) == pytest.approx(0.0)
    assert lr_lambda(cosine)(505) == pytest.approx(0.5)

def test_logs_and_snapshots_for_the_figures(smoke_cfg):
    cfg = replace(smoke_cfg, steps=4, ckpt_every=2, eval_every=2)
    summary = train(cfg, "margin", name="logs", progress=False)
    logs = Run(cfg).logs("logs")
    header = (logs / "samples.csv").read_text().splitlines()[0].split(",")
    assert header == ["step", "video_id", "topic", "source", "aligned", "loss", "weight"]
    scalars = [json.loads(line) for line in (logs / "scalars.jsonl").read_text().splitlines()]
    assert [s["step"] for s in scalars] == [0, 1, 2, 3] and "val/rsum" in scalars[1]
    assert sorted(weight_net_snapshots(cfg, "logs")) == [2, 4]
    assert summary["best"]["step"] in (2, 4) and summary["margin"] == cfg.margin
    best = load_file(str(Run(cfg).checkpoints("logs") / "best.safetensors"))  # the weights of the selected step
    step = checkpoint_tensors(Run(cfg).checkpoints("logs"))  # the weights of the last step
    assert best.keys() == {k[len("model."):] for k in step if k.startswith("model.")}
    assert any(not torch.equal(best[k], step[f"model.{k}"]) for k in best) == (summary["best"]["step"] != 4)


def test_vlm_method_requires_captions(smoke_cfg, tmp_path):
    from mamc.run import MissingArtifact

    (tmp_path / "data").mkdir()
    for name in ("videos", "manifest.jsonl", "corpus.json"):
        (tmp_path / "data" / name).symlink_to(smoke_cfg.data_dir / name)
    cfg = replace(smoke_cfg, run_dir=str(tmp_path), steps=1)
    with pytest.raises(MissingArtifact, match="run notebook 02 or `mamc caption` first"):
        train(cfg, "vlm", name="nocap", progress=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, cfg, method, name):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    try:
        train(cfg, method, name=name, progress=False)
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["margin", "meta"])
def test_two_process_gloo_matches_one_process(smoke_cfg, method):
    cfg = replace(smoke_cfg, steps=3, ckpt_every=3, eval_every=100, device="cpu")
    train(cfg, method, name=f"single_{method}", progress=False)
    mp.start_processes(_worker, args=(2, _free_port(), cfg, method, f"ddp_{method}"), nprocs=2, start_method="spawn")
    a, b = _tensors(cfg, f"single_{method}"), _tensors(cfg, f"ddp_{method}")
    for k in a:
        if k.startswith(("model.", "weight_net.")):
            torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)


def test_worker_processes_prefetch_the_same_batches(smoke_cfg):
    cfg = replace(smoke_cfg, steps=3, ckpt_every=3, eval_every=100)
    train(cfg, "margin", name="inline", progress=False)
    train(replace(cfg, num_workers=2), "margin", name="workers", progress=False)
    a, b = _tensors(cfg, "inline"), _tensors(cfg, "workers")
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("model."))


def test_loader_workers_end_with_training_even_when_it_fails(smoke_cfg, monkeypatch):
    """In a kernel an interrupted cell keeps its traceback (and with it the loader) alive: the loader's worker
    processes must end with training all the same."""
    import psutil

    import mamc.train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    cfg = replace(smoke_cfg, steps=4, ckpt_every=4, eval_every=2, num_workers=2)
    monkeypatch.setattr(mamc.train, "validate", interrupted)
    before = set(psutil.Process().children(recursive=True))  # e.g. multiprocessing's resource tracker
    with pytest.raises(KeyboardInterrupt) as kept:
        train(cfg, "margin", name="interrupted", progress=False)
    assert kept.traceback and set(psutil.Process().children(recursive=True)) - before == set()


def test_missing_splits_are_named(smoke_cfg, tmp_path):
    """A manifest without meta (or val) rows says which split is missing and how to make it."""
    from mamc.manifest import read_manifest, write_jsonl

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "videos").symlink_to(smoke_cfg.data_dir / "videos")
    write_jsonl(tmp_path / "data" / "manifest.jsonl",
                [r for r in read_manifest(smoke_cfg.data_dir / "manifest.jsonl") if r["split"] != "meta"])
    cfg = replace(smoke_cfg, run_dir=str(tmp_path), steps=1)
    train(cfg, "infonce", name="no_meta_needed", progress=False)
    with pytest.raises(ValueError, match="no usable 'meta' rows .*--meta-per-concept"):
        train(cfg, "meta", name="needs_meta", progress=False)


@pytest.fixture(scope="module")
def captioned_cfg(smoke_cfg, tmp_path_factory):
    """The smoke corpus with a VLM caption per training video (its own caption with the words reversed), in a
    run folder of its own, so that every method can train."""
    run = tmp_path_factory.mktemp("captioned")
    (run / "data").mkdir()
    for name in ("videos", "manifest.jsonl", "corpus.json"):
        (run / "data" / name).symlink_to(smoke_cfg.data_dir / name)
    train_rows = {r["video_id"]: r for r in read_manifest(smoke_cfg.data_dir / "manifest.jsonl", "train")}
    write_jsonl(run / "data" / "captions.jsonl", [
        {"video_id": v, "video": r["video"], "caption": " ".join(reversed(r["caption"].split())), "split": "train",
         "source": "vlm", "topic": r.get("topic")} for v, r in train_rows.items()])
    return replace(smoke_cfg, run_dir=str(run))


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_under_bfloat16_autocast_on_the_cpu(captioned_cfg, method, monkeypatch):
    """The CUDA code path on the CPU: every encoder forward of a step, the meta step's virtual model included,
    runs in bfloat16, and the losses come out in float32."""
    seen = []
    real = trainer.contrastive_loss

    def spy(kind, video, text, *args, **kwargs):
        seen.append((video.dtype, text.dtype))
        out = real(kind, video, text, *args, **kwargs)
        assert out.dtype == torch.float32
        return out

    monkeypatch.setattr(trainer, "contrastive_loss", spy)
    cfg = replace(captioned_cfg, steps=3, eval_every=3, ckpt_every=3, meta_interval=1, autocast="bfloat16")
    summary = train(cfg, method, name=f"bf16_{method}", progress=False)
    meta = method in ("meta", "mama")
    assert len(seen) == 3 * (2 if meta else 1)  # the meta step adds one forward of the virtual model per step
    assert set(seen) == {(torch.bfloat16, torch.bfloat16)}
    scalars = [json.loads(line) for line in Run(cfg).path("scalars", f"bf16_{method}").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(s["loss"])) for s in scalars) and summary["last_step"] == 3
    assert ("meta_loss" in scalars[-1]) == meta


def test_without_autocast_the_cpu_trains_in_float32(captioned_cfg, monkeypatch):
    seen = []
    real = trainer.contrastive_loss
    monkeypatch.setattr(trainer, "contrastive_loss", lambda kind, v, t, *a, **k: seen.append(v.dtype) or real(kind, v, t, *a, **k))
    train(replace(captioned_cfg, steps=1, eval_every=1, ckpt_every=1), "meta", name="float32_meta", progress=False)
    assert set(seen) == {torch.float32}


def test_meta_batches_are_split_evenly_over_ranks_or_refused():
    cfg = replace(trainer.Config(), meta_batch_size=64)
    assert meta_batch_size(cfg, 500, 1) == 64 and meta_batch_size(cfg, 500, 4) == 64
    assert meta_batch_size(cfg, 30, 1) == 30  # one process: the whole small meta split, as before
    assert meta_batch_size(cfg, 30, 4) == 28  # four ranks: 7 each, none short or empty
    with pytest.raises(ValueError, match="meta split has 3 usable row.*fewer than the 4 ranks"):
        meta_batch_size(cfg, 3, 4)


def test_a_meta_step_by_hand_moves_the_weights_and_reports_each_pair(smoke_cfg, tmp_path):
    """Notebook 03's cell: the bi-level step from a trained model and a fresh MLP, pair by pair."""
    from mamc.train import meta_step_by_hand

    (tmp_path / "data").mkdir()
    for name in ("videos", "manifest.jsonl", "corpus.json"):
        (tmp_path / "data" / name).symlink_to(smoke_cfg.data_dir / name)
    cfg = replace(smoke_cfg, run_dir=str(tmp_path), steps=2, eval_every=2, ckpt_every=2)
    train(cfg, "infonce", progress=False)
    table, stats = meta_step_by_hand(cfg, "infonce_s0", batch_size=16, steps=3)
    assert len(table) == 16 and set(table["pair"]) <= {"clean", "misaligned"} and set(table["topic"]) <= {"head", "tail"}
    assert abs(table["weight before"].mean() - 1) < 1e-5 and abs(table["weight after"].mean() - 1) < 1e-5
    assert table["change"].abs().max() > 0 and len(stats) == 3 and all(s["meta_loss"] > 0 for s in stats)


@pytest.mark.slow
def test_a_preemption_signal_checkpoints_exits_75_and_the_same_command_resumes_bit_for_bit(smoke_cfg, tmp_path):
    """SIGTERM mid-run (what Slurm sends before it takes the node back): `mamc train` commits its checkpoint at the
    next step boundary and exits 75; run again, it finishes with the tensors of a run never interrupted."""
    import shutil
    import signal
    import subprocess
    import sys
    import time

    settings = dict(steps=400, eval_every=50, ckpt_every=50, patience=0)
    runs = {k: shutil.copytree(smoke_cfg.data_dir, tmp_path / k / "data") .parent for k in ("whole", "preempted")}
    command = [sys.executable, "-m", "mamc", "train", "--run", str(runs["preempted"]), "--profile", "smoke", "--method",
               "infonce", *(a for k, v in settings.items() for a in ("--param", f"{k}={v}"))]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = runs["preempted"] / "checkpoints" / "infonce_s0" / "last.json"
    while not last.exists() and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 75, err[-2000:]
    assert "preempted: infonce_s0: checkpoint committed at step" in err
    stopped = json.loads(last.read_text())["step"]
    assert 50 <= stopped < settings["steps"]
    assert not (runs["preempted"] / "logs" / "infonce_s0" / "summary.json").exists()
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    whole = replace(smoke_cfg, run_dir=str(runs["whole"]), **settings)
    train(whole, "infonce", name="infonce_s0", progress=False)
    a = _tensors(whole, "infonce_s0")
    b = checkpoint_tensors(runs["preempted"] / "checkpoints" / "infonce_s0")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
