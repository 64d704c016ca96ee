"""QA fine-tuning: the combined objective trains a head over [video; question] features, and both kinds of
questions are scored; meta-weighted runs weight the pairs with their learned MLP."""
from dataclasses import replace

import pytest
import torch

from mamc.manifest import read_manifest
from mamc.qa import QAHead, train_and_evaluate_qa
from mamc.run import Run
from mamc.train import train


def test_head_scores_every_answer():
    head = QAHead(8, 5)
    assert head(torch.randn(3, 8), torch.randn(3, 8)).shape == (3, 5)


def test_fine_tunes_and_scores_multiple_choice_and_open_questions(smoke_cfg):
    cfg = replace(smoke_cfg, steps=2, eval_every=2, ckpt_every=2, qa_steps=2)
    train(cfg, "meta", name="qa_meta", progress=False)
    result = train_and_evaluate_qa(cfg, "qa_meta", "meta", 0)
    questions = read_manifest(cfg.data_dir / "manifest.jsonl", "qa")
    assert result["n_questions"] == len(questions)
    assert result["chance_mc"] == pytest.approx(100 * sum(1 / len(r["candidates"]) for r in questions) / len(questions))
    for kind in ("mc", "open"):
        assert_overall_is_the_mean_over_question_types(result[kind], questions)
    assert Run(cfg).read("qa", "qa_meta") == result


def assert_overall_is_the_mean_over_question_types(acc: dict, questions: list[dict]) -> None:
    """Overall accuracy = the per-type accuracies weighted by each type's count of questions, each a fraction of
    its count (ties split: a multiple of 1/k per question at most)."""
    counts = {}
    for r in questions:
        counts[r.get("qtype") or "all"] = counts.get(r.get("qtype") or "all", 0) + 1
    assert set(acc) == {"acc", *(f"acc/{t}" for t in counts)}
    assert acc["acc"] == pytest.approx(sum(acc[f"acc/{t}"] * n for t, n in counts.items()) / len(questions))


def _private_run(smoke_cfg, tmp_path, keep):
    """A run folder sharing the smoke corpus's videos, with the manifest rows that `keep` returns."""
    from mamc.manifest import write_jsonl

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "videos").symlink_to(smoke_cfg.data_dir / "videos")
    write_jsonl(tmp_path / "data" / "manifest.jsonl", [keep(r) for r in read_manifest(smoke_cfg.data_dir / "manifest.jsonl")
                                                      if keep(r) is not None])
    return replace(smoke_cfg, run_dir=str(tmp_path), steps=2, eval_every=2, ckpt_every=2, qa_steps=2)


def test_open_ended_questions_without_candidates(smoke_cfg, tmp_path):
    """MSRVTT-QA and MSVD-QA list no candidates: open-ended accuracy only, answers outside the vocabulary counted."""
    cfg = _private_run(smoke_cfg, tmp_path, lambda r: {k: v for k, v in r.items() if k != "candidates"})
    train(cfg, "meta", name="open_qa", progress=False)
    assert Run(cfg).path("best weight net", "open_qa").exists()  # the MLP QA weights with: best step, not last
    result = train_and_evaluate_qa(cfg, "open_qa", "meta", 0)
    rows = read_manifest(cfg.data_dir / "manifest.jsonl")
    known = {r["answer"] for r in rows if r["split"] == "qa_train"}
    questions = [r for r in rows if r["split"] == "qa"]
    assert result["mc"] is None and result["chance_mc"] is None and result["n_questions"] == len(questions)
    assert result["answers_outside_vocabulary"] == sum(r["answer"] not in known for r in questions)
    assert_overall_is_the_mean_over_question_types(result["open"], questions)


def test_missing_qa_splits_are_named(smoke_cfg, tmp_path):
    cfg = _private_run(smoke_cfg, tmp_path, lambda r: None if r["split"] == "qa_train" else r)
    train(cfg, "infonce", name="no_qa", progress=False)
    assert not Run(cfg).path("best weight net", "no_qa").exists()
    with pytest.raises(ValueError, match="no 'qa_train' rows"):
        train_and_evaluate_qa(cfg, "no_qa", "infonce", 0)
