"""Tuning, the ablation and the margin sweep train each run once (the sweep is the margin's tuning runs and the
InfoNCE run; the first seed's run at a chosen value is its tuning run), and evaluation writes test results for
every run and QA results for the ablation's."""
import json
from dataclasses import replace

import pytest
import torch

from mamc.experiments import evaluate_all, run_experiments
from mamc.manifest import read_manifest
from mamc.run import Run
from mamc.runs import ablation_runs, chosen_values, sweep_runs, tuning_results

pytestmark = pytest.mark.slow


def test_ablation_and_sweep_train_each_run_once_and_evaluate_all(smoke_cfg):
    cfg = replace(smoke_cfg, methods=("infonce", "margin"), margin_sweep=(0.0, smoke_cfg.margin, 0.3), steps=2,
                  eval_every=2, ckpt_every=2, qa_steps=1)
    summaries = run_experiments(cfg, progress=False)
    assert [s["name"] for s in summaries] == ["margin_s0_m0.1", "margin_s0_m0.3", "infonce_s0"]
    assert [name for name, _ in sweep_runs(cfg)] == ["infonce_s0", "margin_s0_m0.1", "margin_s0_m0.3"]
    assert run_experiments(cfg, progress=False)[0]["completed"]
    results = evaluate_all(cfg)
    chosen, other = ("margin_s0_m0.1", "margin_s0_m0.3") if ablation_runs(cfg)[1][0].endswith("0.1") else (
        "margin_s0_m0.3", "margin_s0_m0.1")
    assert [r["name"] for r in results] == ["infonce_s0", chosen, other]
    run = Run(cfg)
    assert all(run.path("qa", name).exists() for name, _, _ in ablation_runs(cfg))
    assert not run.path("qa", other).exists()
    assert {r["margin"] for r in results} == {0.0, 0.1, 0.3}


def test_each_knob_is_chosen_on_validation_and_mama_takes_its_parts_choices(smoke_cfg, tmp_path):
    (tmp_path / "data").mkdir()
    for name in ("videos", "manifest.jsonl", "corpus.json"):
        (tmp_path / "data" / name).symlink_to(smoke_cfg.data_dir / name)
    captions = [{**row, "caption": "a vlm caption", "source": "vlm"} for row in read_manifest(smoke_cfg.data_dir / "manifest.jsonl", "train")]
    (tmp_path / "data" / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in captions))
    cfg = replace(smoke_cfg, run_dir=str(tmp_path), methods=("infonce", "margin", "meta", "mama"), seeds=(0, 1),
                  margin_sweep=(0.0, 0.1, 0.3), meta_lr_sweep=(1e-3, 1e-2), steps=2, eval_every=1, ckpt_every=2, patience=0)
    trained = [s["name"] for s in run_experiments(cfg, sweep=False, progress=False)]
    table = tuning_results(cfg)
    assert list(table["method"]) == ["margin", "margin", "meta", "meta"] and table["chosen"].sum() == 2
    for _, group in table.groupby("method"):
        assert group.loc[group["chosen"], "val rsum"].item() == group["val rsum"].max()
    chosen = chosen_values(cfg)
    assert chosen["mama"] == {"margin": chosen["margin"]["margin"], "meta_lr": chosen["meta"]["meta_lr"]}
    names = [name for name, _, _ in ablation_runs(cfg)]
    m, lr = chosen["margin"]["margin"], chosen["meta"]["meta_lr"]
    assert f"margin_s0_m{m:g}" in names and f"margin_s1_m{m:g}" in names and f"mama_s1_m{m:g}_lr{lr:g}" in names
    assert len(trained) == len(set(trained)) == 4 + 2 + 2 + 2  # tuning, infonce ×2, margin and meta seed 1, mama ×2
    assert set(names) <= set(trained)
    summary = Run(cfg).read("summary", f"mama_s1_m{m:g}_lr{lr:g}")
    assert summary["margin"] == m


def test_methods_can_be_trained_group_by_group(smoke_cfg):
    cfg = replace(smoke_cfg, methods=("infonce", "margin"), steps=1, eval_every=1, ckpt_every=1)
    first = run_experiments(cfg, ["infonce"], sweep=False, progress=False)
    assert [s["name"] for s in first] == ["infonce_s0"]
    assert [s["name"] for s in run_experiments(cfg, ["margin"], sweep=False, progress=False)] == ["margin_s0_m0.2"]


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
        assert [s["name"] for s in run_experiments(cfg, progress=False)] == ["meta_s0_lr0.001", "infonce_s0"]
        evaluate_all(cfg)
    for name in ("infonce_s0", "meta_s0_lr0.001"):
        a, b = (checkpoint_tensors(Run(c).checkpoints(name)) for c in (inline, pooled))
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert Run(inline).read("qa", name) == Run(pooled).read("qa", name)


def test_the_dose_response_trains_vlm_on_each_weaker_captioners_captions(smoke_cfg, tmp_path):
    from mamc.caption.jobs import caption_quality
    from mamc.data.prepare import load_rows
    from mamc.report.tables import dose_response

    (tmp_path / "data").mkdir()
    for name in ("videos", "manifest.jsonl", "corpus.json"):
        (tmp_path / "data" / name).symlink_to(smoke_cfg.data_dir / name)
    train = read_manifest(smoke_cfg.data_dir / "manifest.jsonl", "train")
    cfg = replace(smoke_cfg, run_dir=str(tmp_path), methods=("infonce", "vlm"), seeds=(0, 1), dose_captioner_steps=(2,), margin_sweep=(0.0,),
                  captioner_steps=4, steps=2, eval_every=1, ckpt_every=2, patience=0, qa_steps=1)
    weak = replace(cfg, captioner_snapshot=2)
    for run_cfg, caption in ((cfg, "true_caption"), (weak, None)):
        path = Run(run_cfg).path("captions")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps({**r, "caption": r[caption] if caption else "a weak caption", "source": "vlm"})
                                + "\n" for r in train))
        caption_quality(run_cfg)
    assert {r["caption"] for r in load_rows(weak, "train", with_vlm=True) if r["source"] == "vlm"} == {"a weak caption"}
    trained = {s["name"] for s in run_experiments(cfg, sweep=False, progress=False)}
    assert trained == {"infonce_s0", "infonce_s1", "vlm_s0", "vlm_s1", "vlm_s0_c2", "vlm_s1_c2"}
    evaluate_all(cfg, qa=False)
    table = dose_response(cfg)
    assert list(table["captioner steps"]) == [2, 4] and list(table["seeds"]) == [2, 2]
    weak_all, strong_all = table["captions all right (%)"]  # true captions sometimes leave out the size
    assert weak_all == 0.0 and strong_all > 50
