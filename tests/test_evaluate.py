"""Specification of retrieval and QA metrics (contract: mamc.evaluate.retrieval_metrics)."""
import numpy as np
import pytest
import torch

from mamc.evaluate import (
    answer_accuracy,
    dual_softmax,
    gt_ranks,
    mean_ci,
    retrieval_metrics,
    video_text_retrieval,
    video_to_text_ranks,
)


def test_perfect_diagonal():
    m = retrieval_metrics(np.eye(20))
    assert m == {"R@1": 100.0, "R@5": 100.0, "R@10": 100.0, "MdR": 1.0, "MnR": 1.0}


def test_ties_count_against_the_model():
    m = retrieval_metrics(np.zeros((10, 10)))
    assert m["R@1"] == 0.0 and m["MdR"] == 10.0 and m["MnR"] == 10.0


def test_known_ranks_and_explicit_gt():
    sim = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8], [0.7, 0.6, 0.1]])
    assert gt_ranks(sim).tolist() == [1, 2, 3]
    assert gt_ranks(sim, gt=[0, 2, 0]).tolist() == [1, 1, 1]
    m = retrieval_metrics(torch.tensor(sim), gt=[0, 2, 0])
    assert m["R@1"] == 100.0


def test_invariant_to_permuting_candidates():
    rng = np.random.default_rng(0)
    sim = rng.normal(size=(50, 50))
    perm = rng.permutation(50)
    inv = np.argsort(perm)
    assert retrieval_metrics(sim) == retrieval_metrics(sim[:, perm], gt=inv)


def test_chunking_does_not_change_ranks():
    rng = np.random.default_rng(1)
    sim = rng.normal(size=(300, 300)).astype(np.float32)
    assert (gt_ranks(sim, chunk=7) == gt_ranks(sim, chunk=1000)).all()


def test_several_captions_per_video():
    # 3 videos, 5 captions: captions 0,1 → video 0; 2 → 1; 3,4 → 2.  sim is text × video.
    owner = [0, 0, 1, 2, 2]
    sim = np.array([
        [0.1, 0.9, 0.0],   # caption 0 misranked (video 1 beats video 0)
        [0.8, 0.2, 0.0],   # caption 1 correct
        [0.0, 0.5, 0.4],   # caption 2 correct
        [0.3, 0.2, 0.1],   # caption 3 wrong
        [0.0, 0.1, 0.7],   # caption 4 correct
    ])
    out = video_text_retrieval(sim, owner)
    assert out["t2v"]["R@1"] == pytest.approx(60.0)
    # video→text: video 0's best caption is caption 1 (0.8), beaten by nothing in its column → rank 1.
    # video 1's own caption scores 0.5 but caption 0 scores 0.9 → rank 2. video 2 best 0.7 → rank 1.
    assert out["v2t"]["R@1"] == pytest.approx(200 / 3)
    assert out["v2t"]["MnR"] == pytest.approx(4 / 3)


def test_dual_softmax_never_underflows_into_ties():
    """Far below the best query, float32's softmax at temperature 100 is exactly 0 for every candidate alike;
    the ground truth must still rank above worse candidates."""
    sim = torch.tensor([[1.0, 1.0, 1.0], [0.001, 0.002, 0.0005]])  # query 1 scores ≈ 1 below query 0 everywhere
    assert gt_ranks(dual_softmax(sim, 100.0), [0, 1])[1] == 1
    tiny = torch.tensor([[1e-50, 0.0], [0.0, 2e-50]], dtype=torch.float64)  # zero in float32: all would tie
    assert video_to_text_ranks(tiny, [0, 1]).tolist() == [1, 1]


def test_dual_softmax_reorders_by_query_prior():
    sim = torch.tensor([[0.9, 0.8], [0.95, 0.1]])
    # Query 1 claims video 0 far more strongly than query 0 does, so DSL hands query 0 video 1.
    assert retrieval_metrics(sim, gt=[1, 0])["R@1"] == 50.0
    assert retrieval_metrics(dual_softmax(sim, 20.0), gt=[1, 0])["R@1"] == 100.0


def test_qa_accuracy_known_answers():
    scores = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]])
    acc = answer_accuracy(scores, [1, 0, 0], qtype=["color", "color", "shape"])
    assert acc["acc"] == pytest.approx(200 / 3) and acc["acc/color"] == 100.0 and acc["acc/shape"] == 0.0
    assert answer_accuracy(scores, [-1, 0, 2])["acc"] == 200 / 3  # exactly 2 of 3; -1: an answer outside the vocabulary


def test_ties_are_split_not_given_to_the_first_candidate():
    """A constant model scores chance whatever the answers' positions: 1/k per question with k candidates."""
    constant = np.zeros((4, 4))
    assert answer_accuracy(constant, [0, 0, 0, 0])["acc"] == 25.0 == answer_accuracy(constant, [3, 1, 2, 0])["acc"]
    two_way = np.array([[1.0, 1.0, 0.0]])
    assert answer_accuracy(two_way, [1])["acc"] == 50.0 and answer_accuracy(two_way, [2])["acc"] == 0.0


def test_mean_ci_over_seeds():
    ci = mean_ci([1.0, 2.0, 3.0])
    assert ci["mean"] == 2.0 and ci["std"] == 1.0
    assert ci["lo"] == pytest.approx(2 - 4.302653 / np.sqrt(3), rel=1e-5)
    assert np.isnan(mean_ci([5.0])["lo"])


def test_video_to_text_ranks_match_brute_force_in_any_chunking():
    from mamc.evaluate import video_to_text_ranks

    rng = np.random.default_rng(3)
    owner = rng.integers(0, 40, size=200)
    owner[:40] = np.arange(40)
    sim = rng.normal(size=(200, 40)).astype(np.float32)
    brute = [(sim[:, v] >= sim[owner == v, v].max()).sum() for v in range(40)]
    for chunk in (7, 1000):
        assert video_to_text_ranks(sim, owner, chunk=chunk).tolist() == brute
    with pytest.raises(ValueError, match="at least one caption"):
        video_to_text_ranks(sim[:, :41], np.zeros(200, dtype=int))
