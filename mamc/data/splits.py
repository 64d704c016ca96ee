"""Validation and meta splits carved out of a public dataset's training data.

The method needs a small, clean, concept-balanced *meta* set, and model selection needs a *val* split; public
datasets ship neither (MSR-VTT: 9k train, 1k-A test). The paper does not publish its construction, so this is
the kit's, documented here and in docs/PAPER_RUN.md:

* whole videos move (all their captions), so no video is in two splits;
* **concepts** are the dataset's own labels when its rows have a `topic` (MSR-VTT's 20 categories), otherwise
  topics inferred from the training captions (TF-IDF + NMF, `mamc.topics`), written into each row's `topic`;
* **meta**: `meta_per_concept` videos of each concept, the *cleanest* ones by caption agreement — the mean
  TF-IDF cosine similarity between a video's captions (annotators who agree describe what is there) — each
  with its most central caption. A dataset with one caption per video has no such signal: its meta videos
  are drawn at random within each concept, and the split says so in `meta_selection`;
* **val**: `n_val` videos drawn at random (seeded) from the rest, with all their captions.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from mamc.topics import fit_topics


def _agreement(captions: list[str], vectorizer: TfidfVectorizer) -> tuple[float, int]:
    """Mean pairwise cosine similarity of a video's captions, and the index of its most central caption."""
    if len(captions) < 2:
        return float("nan"), 0
    x = vectorizer.transform(captions)
    sim = (x @ x.T).toarray()
    np.fill_diagonal(sim, np.nan)
    centrality = np.nanmean(sim, axis=1)
    return float(np.nanmean(sim)), int(np.argmax(centrality))


def infer_topics(rows: list[dict], n_topics: int, seed: int) -> list[dict]:
    """Rows with a `topic` from a topic model over the captions of all rows (unsupervised, so fitting on test
    captions leaks no label), for datasets without concept labels."""
    model = fit_topics([r["caption"] for r in rows], n_topics, seed=seed)
    return [dict(r, topic=f"topic {k:02d}: {' '.join(model.top_words[k][:3])}") for r, k in zip(rows, model.labels)]


def carve_splits(rows: list[dict], n_val: int, meta_per_concept: int, seed: int = 0,
                 n_topics: int = 20) -> tuple[list[dict], dict]:
    """`val` and `meta` carved out of the `train` rows (see the module docstring); returns the rows and a
    summary of what was chosen and how."""
    retrieval = [r for r in rows if r["split"] in ("train", "test", "val")]
    if not any(r.get("topic") for r in retrieval if r["split"] == "train"):
        labelled = {id(r): t for r, t in zip(retrieval, (x["topic"] for x in infer_topics(retrieval, n_topics, seed)))}
        rows = [dict(r, topic=labelled[id(r)]) if id(r) in labelled else r for r in rows]
    by_video: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r["split"] == "train":
            by_video[r["video_id"]].append(r)
    if len(by_video) < n_val + 1:
        raise ValueError(f"{len(by_video)} training videos cannot give a val split of {n_val} and leave any to train")
    vectorizer = TfidfVectorizer(min_df=1).fit([r["caption"] for group in by_video.values() for r in group])
    scored = {v: _agreement([r["caption"] for r in group], vectorizer) for v, group in by_video.items()}
    multi = any(len(group) > 1 for group in by_video.values())
    rng = np.random.default_rng(seed)
    concepts: dict[str, list[str]] = defaultdict(list)
    for video, group in by_video.items():
        concepts[str(group[0].get("topic") or "none")].append(video)
    meta: dict[str, int] = {}
    for concept in sorted(concepts):
        videos = sorted(concepts[concept])
        if multi:
            videos.sort(key=lambda v: -np.nan_to_num(scored[v][0], nan=-1.0))
        else:
            videos = list(rng.permutation(videos))
        for video in videos[:meta_per_concept]:
            meta[video] = scored[video][1]
    rest = sorted(v for v in by_video if v not in meta)
    val = set(rng.choice(rest, size=min(n_val, len(rest) - 1), replace=False).tolist()) if n_val else set()
    out, dropped = [], 0
    for r in rows:
        video = r["video_id"]
        if r["split"] != "train" or (video not in meta and video not in val):
            out.append(r)
        elif video in val:
            out.append(dict(r, split="val"))
        elif r is by_video[video][meta[video]]:
            out.append(dict(r, split="meta"))
        else:
            dropped += 1
    summary = {"val_videos": len(val), "meta_videos": len(meta), "concepts": len(concepts),
               "meta_per_concept": meta_per_concept, "seed": seed, "meta_other_captions_dropped": dropped,
               "meta_selection": "caption agreement" if multi else "random within concept (one caption per video)"}
    return out, summary
