"""The embedded captioner's own corpus: the analogue of the data a real LLaVA learned from, disjoint from every
split of the benchmark.

A VLM that captions a benchmark's videos was trained on other data. So is the embedded captioner: its clips come
from the corpus generator's renderer and codec (the same shapes, colours, motions and pixels statistics) but from
a random stream of their own, so no clip of any benchmark split is among them; they cover all topics evenly
(the benchmark uses the first `n_topics`, Zipf-distributed) and are described in complete sentences that always
state the size, as a captioning dataset's descriptions would. A held-out part measures the captioner on clips it
never trained on.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mamc.config import Config
from mamc.data.synthetic import describe, render, sample_attributes, topic_names, write_video
from mamc.manifest import iter_jsonl, write_jsonl
from mamc.progress import tqdm
from mamc.run import Run

STREAM = 2  # the corpus generator draws from default_rng(seed); the captioner's corpus from default_rng([seed, 2])


def captioner_corpus(cfg: Config, progress: bool = True) -> list[dict]:
    """The rows of the captioner's corpus (`video`, `caption`, `attributes`, `part`: "train" or "heldout"),
    generated into the run folder on first use. Its list is written last, in one rename, so a kill leaves no list
    and the next call regenerates the same clips (they are a function of the seed)."""
    listing = Run(cfg).path("captioner corpus")
    if listing.exists():
        return [row for _, row in iter_jsonl(listing)]
    rng = np.random.default_rng([cfg.caption_seed, STREAM])
    topics = topic_names()
    rows = []
    for k in tqdm(range(cfg.captioner_corpus), desc="captioner corpus", disable=not progress):
        attrs = sample_attributes(topics[k % len(topics)], rng)
        rel = f"videos/cap{k:06d}.mp4"
        write_video(listing.parent / rel, render(attrs, cfg.clip_frames, cfg.clip_size, rng), cfg.fps)
        rows.append({"video_id": f"cap{k:06d}", "video": rel, "caption": describe(attrs, rng, complete=True),
                     "attributes": attrs, "part": "heldout" if k < cfg.captioner_heldout else "train"})
    write_jsonl(listing, rows, validate=False)
    return rows


def clip_path(cfg: Config, row: dict) -> Path:
    return Run(cfg).path("captioner corpus").parent / row["video"]
