"""Retrieval and video-QA metrics, computed in chunks so that 50k × 50k similarity matrices fit in memory.

Rank convention: the rank of the ground truth is the number of candidates whose score is ≥ its score, so ties
count against the model (a constant matrix gives the worst rank, never a lucky R@1).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import stats

CHUNK = 1024


def _as_tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))


def _summarise(ranks: np.ndarray) -> dict[str, float]:
    return {
        "R@1": float(np.mean(ranks <= 1) * 100),
        "R@5": float(np.mean(ranks <= 5) * 100),
        "R@10": float(np.mean(ranks <= 10) * 100),
        "MdR": float(np.median(ranks)),
        "MnR": float(np.mean(ranks)),
    }


def gt_ranks(sim, gt: Sequence[int] | np.ndarray | None = None, chunk: int = CHUNK) -> np.ndarray:
    """1-based rank of each query's ground-truth candidate (ties counted against the model)."""
    sim = _as_tensor(sim)
    n = sim.shape[0]
    gt_t = torch.arange(n) if gt is None else torch.as_tensor(np.asarray(gt), dtype=torch.long)
    if gt_t.shape[0] != n:
        raise ValueError(f"gt has {gt_t.shape[0]} entries for {n} queries")
    if n and (gt_t.min() < 0 or gt_t.max() >= sim.shape[1]):
        raise ValueError(f"gt indices must lie in [0, {sim.shape[1]})")
    ranks = np.empty(n, dtype=np.int64)
    for s in range(0, n, chunk):
        block = sim[s : s + chunk]
        target = block.gather(1, gt_t[s : s + chunk, None].to(block.device))
        ranks[s : s + chunk] = (block >= target).sum(1).cpu().numpy()
    return ranks


def retrieval_metrics(sim, gt: Sequence[int] | np.ndarray | None = None) -> dict[str, float]:
    """R@1/5/10 (percent), median and mean rank for `sim` [n_queries, n_candidates]; gt defaults to the diagonal."""
    return _summarise(gt_ranks(sim, gt))


def video_to_text_ranks(sim_t2v, caption_video: Sequence[int] | np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """Video→text ranks from the text×video matrix: for each video the best-ranked of its own captions
    counts (MSR-VTT has 20 per video), and its rank is 1 + the number of *other videos'* captions scoring at
    least as high (its own other captions never count against it). Reads the matrix in contiguous row
    chunks, never transposed."""
    sim = _as_tensor(sim_t2v)
    owner = torch.as_tensor(np.asarray(caption_video), dtype=torch.long)
    n_videos = sim.shape[1]
    if owner.shape[0] != sim.shape[0]:
        raise ValueError(f"caption_video has {owner.shape[0]} entries for {sim.shape[0]} captions")
    if torch.bincount(owner, minlength=n_videos)[:n_videos].min() == 0:
        raise ValueError("every video needs at least one caption")
    dtype = torch.float64 if sim.dtype == torch.float64 else torch.float32
    own = sim.gather(1, owner[:, None].to(sim.device)).squeeze(1).to(dtype).cpu()
    best = torch.full((n_videos,), -torch.inf, dtype=dtype).scatter_reduce(0, owner, own, "amax")
    counts = torch.ones(n_videos, dtype=torch.long)
    videos = torch.arange(n_videos)
    for s in range(0, sim.shape[0], chunk):
        other = owner[s : s + chunk, None] != videos[None, :]
        counts += ((sim[s : s + chunk].to(dtype).cpu() >= best[None, :]) & other).sum(0)
    return counts.numpy()


def video_text_retrieval(sim_t2v, caption_video: Sequence[int] | np.ndarray | None = None,
                         dsl: bool = False) -> dict[str, dict[str, float]]:
    """Both directions from one text×video similarity matrix (several captions per video allowed).

    With `dsl`, each direction is re-scored by dual softmax over its own queries first.
    """
    sim = _as_tensor(sim_t2v)
    owner = np.arange(sim.shape[0]) if caption_video is None else np.asarray(caption_video)
    t2v, v2t = (dual_softmax(sim, dim=0), dual_softmax(sim, dim=1)) if dsl else (sim, sim)
    return {
        "t2v": _summarise(gt_ranks(t2v, owner)),
        "v2t": _summarise(video_to_text_ranks(v2t, owner)),
    }


def dual_softmax(sim, temperature: float = 100.0, dim: int = 0, chunk: int = CHUNK) -> torch.Tensor:
    """Dual softmax (DSL) re-scoring: each score times its softmax across the *queries*; `dim` is the axis
    that indexes the queries (0 when rows are the queries, as for t2v on a text×video matrix; 1 for v2t on
    the same matrix). A labelled inference-time variant: it uses the whole query set as a prior, which a
    single query cannot. Computed in float64: with temperature 100, float32's softmax underflows to exact
    zeros for scores 0.87 below the best, and those zeros would tie (and count against the model)."""
    sim = _as_tensor(sim).double()
    out = torch.empty_like(sim)
    if dim == 0:
        for s in range(0, sim.shape[1], chunk):
            cols = sim[:, s : s + chunk]
            out[:, s : s + chunk] = cols * torch.softmax(cols * temperature, dim=0)
    else:
        for s in range(0, sim.shape[0], chunk):
            rows = sim[s : s + chunk]
            out[s : s + chunk] = rows * torch.softmax(rows * temperature, dim=1)
    return out


def argmax_credit(scores, answer_index: Sequence[int]) -> np.ndarray:
    """Credit of answering each question with its top-scoring candidate, ties split evenly: 1/k when the answer
    is one of k candidates sharing the top score, 0 otherwise (and for an answer index of -1, an answer outside
    the candidates). A plain argmax would hand every tie to the first candidate, so a constant model would
    score whatever share of answers happen to be listed first. In float64, so that an accuracy is the fraction of
    its counts (2 of 3 is 66.666…667, not float32's 66.66667)."""
    scores = _as_tensor(scores).float()
    answer = torch.as_tensor(np.asarray(answer_index), dtype=torch.long)
    top = scores == scores.max(1, keepdim=True).values
    hit = top.gather(1, answer.clamp_min(0)[:, None]).squeeze(1) & (answer >= 0)
    return (hit.double() / top.sum(1).double()).numpy()


def answer_accuracy(scores, answer_index: Sequence[int], qtype: Sequence[str] | None = None) -> dict[str, float]:
    """Accuracy (percent) of the top-scoring candidate of [n_questions, n_candidates] scores (ties split, see
    `argmax_credit`), overall and per question type: multiple choice over each question's candidates,
    open-ended over the answer vocabulary."""
    return _accuracy(argmax_credit(scores, answer_index), qtype)


def _percent(hits: np.ndarray) -> float:
    """100 × credits / questions, divided last: 2 of 3 is 200/3 exactly as a float (a mean times 100 is one ulp off)."""
    return float(hits.sum() * 100 / len(hits)) if len(hits) else float("nan")


def _accuracy(hits: np.ndarray, qtype: Sequence[str] | None) -> dict[str, float]:
    out = {"acc": _percent(hits)}
    if qtype is not None:
        qtype = np.asarray(qtype)
        for t in sorted(set(qtype.tolist())):
            out[f"acc/{t}"] = _percent(hits[qtype == t])
    return out


def seeds_for_precision(std: float, half_width: float = 1.0, level: float = 0.95, most: int = 1000) -> int | None:
    """The fewest seeds whose Student-t interval would be ±`half_width` at this seed-to-seed spread (the spread
    measured, taken as the truth): what a run needs for a given precision. None when unknown (one seed) or
    beyond `most`."""
    if not np.isfinite(std):
        return None
    for n in range(2, most + 1):
        if stats.t.ppf(0.5 + level / 2, n - 1) * std / np.sqrt(n) <= half_width:
            return n
    return None


def mean_ci(values: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """Mean, sample std and a Student-t confidence interval over seeds (the interval is NaN for one seed)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    mean = float(x.mean()) if n else float("nan")
    std = float(x.std(ddof=1)) if n > 1 else float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * std / np.sqrt(n)) if n > 1 else float("nan")
    return {"mean": mean, "std": std, "lo": mean - half, "hi": mean + half, "n": n}
