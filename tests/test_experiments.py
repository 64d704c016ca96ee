"""The ablation and the margin sweep train each run once (the sweep reuses the ablation's m = 0 and m = margin
runs), and evaluation writes test results for every run and QA results for the ablation's."""
from dataclasses import replace

import torch

from mamc.experiments import evaluate_all, run_experiments
from mamc.run import Run
from mamc.runs import ablation_runs, sweep_runs


def test_ablation_and_sweep_train_each_run_once_and_evaluate_all(smoke_cfg):
    cfg = replace(smoke_cfg, methods=("infonce", "margin"), margin_sweep=(0.0, smoke_cfg.margin, 0.3), steps=2,
                  eval_every=2, ckpt_every=2, qa_steps=1)
    summaries = run_experiments(cfg, progress=False)
    assert [s["name"] for s in summaries] == ["infonce_s0", "margin_s0", "margin_s0_m0.3"]
    assert [name for name, _ in sweep_runs(cfg)] == ["infonce_s0", "margin_s0", "margin_s0_m0.3"]
    assert run_experiments(cfg, progress=False)[0]["completed"]
    results = evaluate_all(cfg)
    assert [r["name"] for r in results] == ["infonce_s0", "margin_s0", "margin_s0_m0.3"]
    run = Run(cfg)
    assert all(run.path("qa", name).exists() for name, _, _ in ablation_runs(cfg))
    assert not run.path("qa", "margin_s0_m0.3").exists()
    assert results[2]["margin"] == 0.3 and results[0]["margin"] == 0.0


def test_methods_can_be_trained_group_by_group(smoke_cfg):
    cfg = replace(smoke_cfg, methods=("infonce", "margin"), steps=1, eval_every=1, ckpt_every=1)
    first = run_experiments(cfg, ["infonce"], sweep=False, progress=False)
    assert [s["name"] for s in first] == ["infonce_s0"]


def test_a_meta_step_by_hand_moves_the_weights_and_reports_each_pair(smoke_cfg):
    from mamc.experiments import meta_step_by_hand

    cfg = replace(smoke_cfg, methods=("infonce",), steps=2, eval_every=2, ckpt_every=2)
    run_experiments(cfg, sweep=False, progress=False)
    table, stats = meta_step_by_hand(cfg, "infonce_s0", batch_size=16, steps=3)
    assert len(table) == 16 and set(table["pair"]) <= {"clean", "misaligned"} and set(table["topic"]) <= {"head", "tail"}
    assert abs(table["weight before"].mean() - 1) < 1e-5 and abs(table["weight after"].mean() - 1) < 1e-5
    assert table["change"].abs().max() > 0 and len(stats) == 3 and all(s["meta_loss"] > 0 for s in stats)


def test_runs_side_by_side_in_worker_processes_give_the_same_results(smoke_cfg, tmp_path):
    from mamc.checkpoint import checkpoint_tensors

    (tmp_path / "data").mkdir()
    for name in ("videos", "manifest.jsonl", "corpus.json"):
        (tmp_path / "data" / name).symlink_to(smoke_cfg.data_dir / name)
    small = dict(methods=("infonce", "meta"), margin_sweep=(0.0,), steps=2, eval_every=2, ckpt_every=2, qa_steps=1)
    inline = replace(smoke_cfg, run_dir=str(tmp_path / "inline"), **small)
    pooled = replace(smoke_cfg, run_dir=str(tmp_path), parallel_runs=2, **small)
    (tmp_path / "inline").mkdir()
    (tmp_path / "inline" / "data").symlink_to(tmp_path / "data")
    for cfg in (inline, pooled):
        assert [s["name"] for s in run_experiments(cfg, progress=False)] == ["infonce_s0", "meta_s0"]
        evaluate_all(cfg)
    for name in ("infonce_s0", "meta_s0"):
        a, b = (checkpoint_tensors(Run(c).checkpoints(name)) for c in (inline, pooled))
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert Run(inline).read("qa", name) == Run(pooled).read("qa", name)
