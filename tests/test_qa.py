"""QA fine-tuning: the combined objective trains a head over [video; question] features, and both kinds of
questions are scored; meta-weighted runs weight the pairs with their learned MLP."""
from dataclasses import replace

import torch

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
    assert 0 <= result["mc"]["acc"] <= 100 and 0 <= result["open"]["acc"] <= 100
    assert Run(cfg).read("qa", "qa_meta") == result


def _private_run(smoke_cfg, tmp_path, keep):
    """A run folder sharing the smoke corpus's videos, with the manifest rows that `keep` returns."""
    from mamc.manifest import read_manifest, write_jsonl

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
    assert result["mc"] is None and result["chance_mc"] is None and 0 <= result["open"]["acc"] <= 100
    assert result["answers_outside_vocabulary"] >= 0 and result["n_questions"] > 0


def test_missing_qa_splits_are_named(smoke_cfg, tmp_path):
    import pytest

    cfg = _private_run(smoke_cfg, tmp_path, lambda r: None if r["split"] == "qa_train" else r)
    train(cfg, "infonce", name="no_qa", progress=False)
    assert not Run(cfg).path("best weight net", "no_qa").exists()
    with pytest.raises(ValueError, match="no 'qa_train' rows"):
        train_and_evaluate_qa(cfg, "no_qa", "infonce", 0)
