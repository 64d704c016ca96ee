"""Caption jobs whose unit is a video shard: the captions of shard i's clips become caption shard i, a sidecar
with the same name and the same sample keys (video2dataset's convention), so captioning never rewrites a video
shard and training joins the two by key (`mamc.data.stream`).

Each caption shard is written atomically with its record (samples, failures with their reasons), and a finished
shard is skipped: a job killed at any instant loses at most the shard it was writing. Work is split by shard:
a process takes a range (`--range`, one task of a Slurm array) and the ranks of a torchrun or srun launch take
every world-th shard of it. A caption depends only on its video and the seeds (`video_seed`), never on the
shard layout or the split of the work; each records its provenance (model, revision, engine, recipe, seed).
"""
from __future__ import annotations

import json
import time

from mamc.caption.jobs import caption_rows, check_recipe, load_for
from mamc.caption.vlm import Captioner
from mamc.config import Config
from mamc.data.shards import finished, read_sizes, shard_clips, write_sizes, write_tar
from mamc.lock import locked
from mamc.progress import tqdm
from mamc.run import Run


@locked("mamc caption")
def caption_shards(cfg: Config, model: str | None = None, shards: slice = slice(None), captioner: Captioner | None = None,
                   progress: bool = True) -> dict:
    """Caption the training clips of the unfinished shards among `shards` into their sidecars; returns counts,
    the time split between decoding+grids and generation, and the job's overhead per shard (everything else:
    reading the shard's index, writing the sidecar and its record)."""
    check_recipe(cfg)
    run = Run(cfg)
    source, out = run.shards("train"), run.caption_shards("train")
    n_shards = len(read_sizes(source))
    todo = [i for i in range(n_shards)[shards] if not finished(out, i)]
    stats = {"shards": n_shards, "written": 0, "captioned": 0, "failed": 0, "output": str(out),
             "seconds": {"grid": 0.0, "generate": 0.0, "shard overhead": 0.0}}
    if todo:
        out.mkdir(parents=True, exist_ok=True)
        cap = captioner or load_for(cfg, model)
        for index in tqdm(todo, desc="caption shards", disable=not progress, unit="shard"):
            start, before = time.time(), sum(stats["seconds"].values())
            clips = [dict(c, video_id=c["id"]) for c in shard_clips(source, index)]
            failures: list[dict] = []

            def samples(clips: list[dict] = clips, failures: list[dict] = failures):
                for clip, result in caption_rows(cap, cfg, clips, stats["seconds"]):
                    if isinstance(result, str):
                        failures.append({"video_id": clip["id"], "video": clip["video"], "reason": result})
                        continue
                    yield {"__key__": clip["key"], "json": json.dumps(result, sort_keys=True, ensure_ascii=False).encode()}

            record = write_tar(out, index, samples(), len(clips), failures)
            stats["written"] += 1
            stats["captioned"] += record["samples"]
            stats["failed"] += len(failures)
            stats["seconds"]["shard overhead"] += time.time() - start - (sum(stats["seconds"].values()) - before)
    stats["complete"] = write_sizes(out, n_shards) is not None
    return stats
