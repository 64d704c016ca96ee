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
