"""Captioning throughput: videos/s for batched vs one-at-a-time generation, and the time split between
decoding, keyframes + grid, preprocessing and generation; then the caption job over shards (`mamc caption
--shards`) at each of `--job-batches`: videos/s of the whole job and its overhead per shard (reading the shard's
index, writing the sidecar and its record).

    python benchmarks/caption.py [--model runs/default/captioner] [--videos 64] [--batch 16] [--job-batches 1,16]

Without --model, an untrained tiny LLaVA is built (forced to generate all max_new_tokens, so lengths match).
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections import defaultdict

import torch

from mamc.caption.grid import candidate_frames, keyframe_grid
from mamc.caption.tiny import build_captioner
from mamc.caption.vlm import generate_captions, load_captioner, prepare_inputs
from mamc.config import load_config
from mamc.data.synthetic import generate_corpus
from mamc.manifest import read_manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model")
    parser.add_argument("--videos", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--job-batches", default="1,16")
    parser.add_argument("--shard-size", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config("default", run_dir=tmp, n_train=args.videos, n_val=1, n_test=1, n_qa=0, n_meta_per_topic=1)
        rows = read_manifest(generate_corpus(cfg, progress=False), "train")
        if args.model:
            cap = load_captioner(args.model)
        else:
            processor, model = build_captioner([r["caption"] for r in rows] + [cfg.prompt], 4 * cfg.grid_cell)
            model.save_pretrained(f"{tmp}/cap")
            processor.save_pretrained(f"{tmp}/cap")
            cap = load_captioner(f"{tmp}/cap")
            cap.model.generation_config.min_new_tokens = args.tokens
        split = defaultdict(float)
        grids = []
        for r in rows:
            t = time.perf_counter()
            frames = candidate_frames(cfg.data_dir / r["video"], cfg)
            split["decode"] += time.perf_counter() - t
            t = time.perf_counter()
            grids.append(keyframe_grid(frames, cfg))
            split["keyframes + grid"] += time.perf_counter() - t
        rates = {}
        for batch in (1, args.batch):
            start = time.perf_counter()
            for b in range(0, len(grids), batch):
                t = time.perf_counter()
                inputs = prepare_inputs(cap, grids[b : b + batch], cfg.prompt)
                pre = time.perf_counter() - t
                t = time.perf_counter()
                generate_captions(cap, grids[b : b + batch], cfg.prompt, cfg.gen_temperature, args.tokens, seed=b, inputs=inputs)
                if batch == args.batch:
                    split["preprocess"] += pre
                    split["generate"] += time.perf_counter() - t
            rates[batch] = len(grids) / (time.perf_counter() - start)
        jobs = shard_job(cfg, cap, args)
    print(f"captioner: {cap.name}, {len(grids)} videos, {args.tokens} new tokens, {torch.get_num_threads()} threads")
    for batch, r in rates.items():
        print(f"batch {batch:3d}: {r:7.1f} videos/s (generation incl. preprocessing)")
    print(f"batched / one-at-a-time: {rates[args.batch] / rates[1]:.2f}x")
    total = sum(split.values())
    for k, v in split.items():
        print(f"{k:18s} {v:7.2f} s  {100 * v / total:5.1f}%")
    print(f"caption job over shards of {args.shard_size} clips (`mamc caption --shards`), max_new_tokens={args.tokens}:")
    for batch, (rate, overhead, share) in jobs.items():
        print(f"job batch {batch:3d}: {rate:7.1f} videos/s, overhead {overhead * 1000:6.1f} ms per shard "
              f"({100 * share:.1f}% of the job)")


def shard_job(cfg, cap, args) -> dict[int, tuple[float, float, float]]:
    """The sidecar caption job over freshly written shards, once per batch size: (videos/s, overhead s per shard,
    overhead's share of the job)."""
    from dataclasses import replace

    from mamc.caption.sidecars import caption_shards
    from mamc.data.shards import make_shards
    from mamc.run import Run, save_config

    cfg = replace(cfg, data_format="shards", shard_size=args.shard_size, max_new_tokens=args.tokens,
                  max_caption_tokens=0)
    save_config(cfg)
    make_shards(Run(cfg).path("manifest"), "train", Run(cfg).shards("train"), cfg.data_dir, cfg.clip_frames,
                cfg.frame_size, cfg.shard_size, progress=False)
    out = {}
    for batch in (int(b) for b in args.job_batches.split(",")):
        shutil.rmtree(Run(cfg).caption_shards("train"), ignore_errors=True)
        start = time.perf_counter()
        stats = caption_shards(replace(cfg, caption_batch_size=batch), captioner=cap, progress=False)
        wall = time.perf_counter() - start
        overhead = stats["seconds"]["shard overhead"]
        out[batch] = (stats["captioned"] / wall, overhead / stats["written"], overhead / wall)
    return out


if __name__ == "__main__":
    main()
