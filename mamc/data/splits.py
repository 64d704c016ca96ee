"""Validation and meta splits carved out of a public dataset's training data, in bounded memory.

The method needs a small, clean, concept-balanced *meta* set, and model selection needs a *val* split; public
datasets ship neither (MSR-VTT: 9k train, 1k-A test). The paper does not publish its construction, so this is
the kit's, documented here and in docs/PAPER_RUN.md:

* whole videos move (all their captions), so no video is in two splits;
* **concepts** are the dataset's own labels when its rows have a `topic` (MSR-VTT's 20 categories), otherwise
  topics inferred from the captions (TF-IDF + NMF, `mamc.topics`), written into each retrieval row's `topic`;
* **meta**: `meta_per_concept` videos of each concept, the *cleanest* ones by caption agreement — the mean
  TF-IDF cosine similarity between a video's captions (annotators who agree describe what is there) — each
  with its most central caption. A dataset with one caption per video has no such signal: its meta videos
  are drawn at random within each concept, and the split says so in `meta_selection`;
* **val**: `n_val` videos drawn at random (seeded) from the rest, with all their captions.

Rows stream through a staging file; what stays in memory is a few numbers per row (offset, video hash,
topic) and a seeded sample of at most `SAMPLE` captions, on which the topic model and the TF-IDF weights are
fitted (all captions when there are fewer). Videos are ordered by the hash of their id, so the choice is a
function of the data and the seed, not of the order of the annotation files' rows.
"""
from __future__ import annotations

import os
from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from mamc.manifest import RETRIEVAL_SPLITS, encode_row, id_hash, iter_jsonl
from mamc.topics import fit_topics

SAMPLE = 200_000
CHUNK = 20_000
NO_TOPIC = 0xFFFF


class _Staged:
    """Rows written once to a staging file, with what the carving needs of each kept in arrays."""

    def __init__(self, rows: Iterable[dict], path: Path, seed: int):
        self.path, self.topic_names = path, {}
        self.video, self.topic = array("Q"), array("H")
        self.train, self.retrieval = array("b"), array("b")
        self.sample: list[tuple[int, str]] = []  # (ordinal, caption) of retrieval rows: reservoir of SAMPLE
        rng, seen = np.random.default_rng(seed), 0
        with open(path, "wb") as fh:
            for k, row in enumerate(rows):
                fh.write((encode_row(row) + "\n").encode("utf-8"))
                self.video.append(id_hash(row["video_id"]))
                topic = row.get("topic")
                self.topic.append(NO_TOPIC if not topic else self.topic_names.setdefault(str(topic), len(self.topic_names)))
                self.train.append(row["split"] == "train")
                self.retrieval.append(row["split"] in RETRIEVAL_SPLITS)
                if row["split"] in RETRIEVAL_SPLITS:
                    seen += 1
                    if len(self.sample) < SAMPLE:
                        self.sample.append((k, row["caption"]))
                    elif (j := int(rng.integers(seen))) < SAMPLE:
                        self.sample[j] = (k, row["caption"])
        if len(self.topic_names) >= NO_TOPIC:
            raise ValueError(f"{len(self.topic_names)} distinct topics: more than the {NO_TOPIC - 1} a concept-balanced "
                             "meta set can hold one video of each")

    def __len__(self) -> int:
        return len(self.topic)

    def release(self) -> None:
        """Drop what only the choice needed; the final pass reads the rows, their split flags and topics."""
        self.video, self.sample = array("Q"), []

    def rows(self) -> Iterator[tuple[int, dict]]:
        for k, (_, row) in enumerate(iter_jsonl(self.path)):
            yield k, row

    def captions(self, wanted: np.ndarray) -> Iterator[tuple[int, str]]:
        """(ordinal, caption) of the rows where `wanted` is true, in one sequential pass."""
        for k, row in self.rows():
            if wanted[k]:
                yield k, row["caption"]


def _infer_topics(staged: _Staged, n_topics: int, seed: int) -> list[str]:
    """Each retrieval row's topic from a topic model fitted on the caption sample (unsupervised, so fitting on
    test captions leaks no label), assigned in chunks of one pass; returns the topic names, indexed by the ids
    written into `staged.topic`."""
    model = fit_topics([c for _, c in staged.sample], n_topics, seed=seed)
    names = [f"topic {k:02d}: {' '.join(words[:3])}" for k, words in enumerate(model.top_words)]
    def assign(chunk: list[tuple[int, str]]) -> None:
        for (k, _), label in zip(chunk, model.assign([c for _, c in chunk])):
            staged.topic[k] = int(label)

    chunk: list[tuple[int, str]] = []
    for item in staged.captions(np.frombuffer(staged.retrieval, np.int8).astype(bool)):
        chunk.append(item)
        if len(chunk) == CHUNK:
            assign(chunk)
            chunk = []
    if chunk:
        assign(chunk)
    return names


def _group_videos(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows grouped by video, videos numbered in the order of their id's hash: each row's video (int32), the
    rows in video order (each video's rows in their order), where each video starts in it, and its row count.
    What `np.unique` returns, in a third of its memory (10M rows: about 300 MB at the peak)."""
    order = np.argsort(hashes, kind="stable")
    sorted_hashes = hashes[order]
    new = np.empty(len(order), bool)
    new[:1] = True
    np.not_equal(sorted_hashes[1:], sorted_hashes[:-1], out=new[1:])
    del sorted_hashes
    inverse = np.empty(len(order), np.int32)
    inverse[order] = np.cumsum(new, dtype=np.int32) - 1
    starts = np.flatnonzero(new)
    return inverse, order, starts, np.diff(np.r_[starts, len(order)]).astype(np.int32)


def _agreement(staged: _Staged, inverse: np.ndarray, train: np.ndarray, counts: np.ndarray,
               vectorizer: TfidfVectorizer) -> tuple[np.ndarray, np.ndarray]:
    """Per video: the mean pairwise cosine similarity of its captions (nan with one caption) and the ordinal of
    its most central caption (its first row's when it has one), from one pass that keeps the captions of the
    videos with several. Those are the small datasets (MSR-VTT: 20 a video); web-scale ones have one a clip."""
    score = np.full(len(counts), np.nan)
    central = np.full(len(counts), -1, np.int64)
    video_of = np.full(len(staged), -1, np.int32)
    video_of[train] = inverse
    grouped: dict[int, list[tuple[int, str]]] = {}
    for k, caption in staged.captions(video_of >= 0):
        v = int(video_of[k])
        if central[v] < 0:
            central[v] = k
        if counts[v] > 1:
            grouped.setdefault(v, []).append((k, caption))
    for v, members in grouped.items():
        x = vectorizer.transform([c for _, c in members])
        sim = (x @ x.T).toarray()
        np.fill_diagonal(sim, np.nan)
        score[v] = float(np.nanmean(sim))
        central[v] = members[int(np.argmax(np.nanmean(sim, axis=1)))][0]
    return score, central


def carve_splits(rows: Iterable[dict], workdir: str | Path, n_val: int, meta_per_concept: int, seed: int = 0,
                 n_topics: int = 20) -> tuple[Iterator[dict], dict]:
    """`val` and `meta` carved out of the `train` rows (see the module docstring). Returns the carved rows, as a
    stream read back from a staging file in `workdir` (removed once the stream is consumed or closed), and a
    summary of what was chosen and how."""
    path = Path(workdir) / f".carve.{os.getpid()}.jsonl"
    Path(workdir).mkdir(parents=True, exist_ok=True)
    try:
        staged = _Staged(rows, path, seed)
        names, inferred = list(staged.topic_names), None
        topic = np.frombuffer(staged.topic, np.uint16)
        train = np.flatnonzero(np.frombuffer(staged.train, np.int8)).astype(np.int32)
        if not len(train) or (topic[train] == NO_TOPIC).all():
            if len(staged.sample) < 2:
                raise ValueError(f"{len(staged.sample)} retrieval caption(s): too few to infer topics from")
            inferred = names = _infer_topics(staged, n_topics, seed)
            topic = np.frombuffer(staged.topic, np.uint16)
        hashes = np.frombuffer(staged.video, np.uint64)
        inverse, rows_by_video, starts, counts = _group_videos(hashes if len(train) == len(hashes) else hashes[train])
        first = train[rows_by_video[starts]]
        del rows_by_video, hashes
        staged.video = array("Q")
        if len(starts) < n_val + 1:
            raise ValueError(f"{len(starts)} training videos cannot give a val split of {n_val} and leave any to train")
        multi = bool((counts > 1).any())
        if multi and meta_per_concept:
            train_sample = [c for k, c in staged.sample if staged.train[k]]
            vectorizer = TfidfVectorizer(min_df=1).fit(train_sample or [""])
            score, central = _agreement(staged, inverse, train, counts, vectorizer)
        else:
            score, central = None, first
        staged.release()
        rng = np.random.default_rng(seed)
        concept = topic[first]
        label = lambda t: "none" if t == NO_TOPIC else names[t]
        meta = np.zeros(len(starts), bool)
        for t in sorted(set(concept.tolist()), key=label):
            members = np.flatnonzero(concept == t)
            if multi:
                members = members[np.argsort(-np.nan_to_num(score[members], nan=-1.0), kind="stable")]
            else:
                members = rng.permutation(members)
            meta[members[:meta_per_concept]] = True
        rest = np.flatnonzero(~meta)
        val = np.zeros(len(starts), bool)
        if n_val:
            val[rng.choice(rest, size=min(n_val, len(rest) - 1), replace=False)] = True
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    video_of = np.full(len(staged), -1, np.int32)
    video_of[train] = inverse
    del inverse
    keep = set(central[meta].tolist())
    summary = {"val_videos": int(val.sum()), "meta_videos": int(meta.sum()), "concepts": len(set(concept.tolist())),
               "meta_per_concept": meta_per_concept, "seed": seed,
               "meta_other_captions_dropped": int(counts[meta].sum() - meta.sum()), "topics_inferred": inferred is not None,
               "meta_selection": "caption agreement" if multi else "random within concept (one caption per video)"}

    def carved() -> Iterator[dict]:
        try:
            for k, row in staged.rows():
                if inferred is not None and staged.retrieval[k]:
                    row = dict(row, topic=inferred[staged.topic[k]])
                v = video_of[k]
                if v < 0:
                    yield row
                elif val[v]:
                    yield dict(row, split="val")
                elif not meta[v]:
                    yield row
                elif k in keep:
                    yield dict(row, split="meta")
        finally:
            path.unlink(missing_ok=True)

    return carved(), summary
