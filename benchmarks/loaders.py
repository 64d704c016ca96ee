"""Training batches per second from the per-clip frame cache and from WebDataset shards, with the same workers,
over one epoch's first pass (no clip read twice, so no in-memory reuse flatters the cache), and disk per clip.

    python benchmarks/loaders.py [--clips 1024] [--size 112] [--frames 8] [--batch 64] [--workers 0,2]

Both hold the same clips of a generated corpus (`--size` pixels square, `--frames` frames each), decoded once
by `mamc frames`' and `mamc shard`'s own code; each loader runs in a fresh process, its page cache warm (the
files were just written), which is the case of a local disk, not of a network filesystem.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

MEASURE = """
import json, sys, time
from mamc.data.loaders import StepBatches, step_loader
from mamc.data.prepare import load_rows
from mamc.data.stream import ShardStream, stream_loader
from mamc.run import Run, load_run_config
run_dir, kind = sys.argv[1], sys.argv[2]
workers, batch, frames, clips = (int(a) for a in sys.argv[3:7])
cfg = load_run_config(run_dir)
if kind == "cache":
    rows = list({r["video_id"]: r for r in load_rows(cfg, "train")}.values())
    loader = step_loader(StepBatches(rows, Run(cfg).frame_cache, frames, batch, batch, 0, 0, 0), 0, clips // batch, workers)
else:
    epoch = ShardStream(Run(cfg).shards("train"), batch, 0, 1, 2, workers, frames, 0, 0, 0, 1).steps_per_epoch
    loader = stream_loader(ShardStream(Run(cfg).shards("train"), batch, 0, 1, 2, workers, frames, 0, 0, 0, epoch), workers)
start, n = time.perf_counter(), 0
for rows, x in loader:
    n += len(rows)
print(json.dumps({"clips": n, "seconds": time.perf_counter() - start}))
"""


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=1024)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", default="0,2")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="loaders_") as run:
        params = [f"n_train={args.clips}", "n_val=8", "n_test=8", "n_qa=0", "n_meta_per_topic=1", f"clip_size={args.size}",
                  f"frame_size={args.size}", f"clip_frames={args.frames}", "shard_size=256", "patch_size=16"]
        common = ["--run", run, "--profile", "default", *(a for p in params for a in ("--param", p))]
        for step in (["frames"], ["shard", "--splits", "train"]):
            subprocess.run([sys.executable, "-m", "mamc", step[0], *common, *step[1:]], check=True, capture_output=True)
        cache = next((Path(run) / "cache").glob("frames_*"))
        shards = next((Path(run) / "shards").glob("frames_*")) / "train"
        sizes = json.loads((shards / "sizes.json").read_text())
        print(f"{args.clips} clips of {args.frames}×{args.size}×{args.size}×3 uint8, batches of {args.batch}")
        print(f"disk per clip: cache {folder_bytes(cache) / args.clips / 1024:.1f} KiB "
              f"({args.clips} files), shards {folder_bytes(shards) / args.clips / 1024:.1f} KiB ({len(sizes)} files)")
        print(f"{'workers':>7s} {'cache clips/s':>14s} {'shards clips/s':>15s} {'shards / cache':>15s}")
        for workers in (int(w) for w in args.workers.split(",")):
            rates = {}
            for kind in ("cache", "shards"):
                done = subprocess.run([sys.executable, "-c", MEASURE, run, kind, str(workers), str(args.batch),
                                       str(args.frames), str(args.clips)], capture_output=True, text=True)
                if done.returncode:
                    raise SystemExit(done.stderr[-3000:])
                result = json.loads(done.stdout.strip().splitlines()[-1])
                rates[kind] = result["clips"] / result["seconds"]
            print(f"{workers:7d} {rates['cache']:14.0f} {rates['shards']:15.0f} {rates['shards'] / rates['cache']:15.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
