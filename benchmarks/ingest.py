"""Ingest at scale: wall time, rows/s and peak memory of `mamc ingest webvid` on generated WebVid-format csv
files, without splits and with val/meta carved (each a fresh process, so its peak memory is its own).

    python benchmarks/ingest.py [--rows 10000,100000,1000000,10000000] [--val 1000] [--meta-per-concept 20]

The captions are drawn from a fixed vocabulary of 40 subjects × 30 actions × 25 places, so the topic model has
topics to find; the csv has WebVid's columns (videoid, contentUrl, duration, page_dir, name).
"""
from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SUBJECTS = [f"{a} {b}" for a in ("young", "old", "smiling", "tired", "happy") for b in
            ("woman", "man", "child", "dog", "cat", "chef", "farmer", "dancer")]
ACTIONS = [f"{v} {o}" for v in ("cooking", "painting", "carrying", "washing", "repairing", "throwing") for o in
           ("a bicycle", "vegetables", "a wooden fence", "a red car", "a small boat")]
PLACES = [f"{p} {w}" for p in ("in a", "near a", "beside a", "inside a", "behind a") for w in
          ("park", "kitchen", "river", "garage", "forest")]


def write_webvid_csv(path: Path, rows: int, seed: int = 0) -> None:
    """A WebVid-format csv of `rows` clips with seeded captions, written in chunks (the generator's own memory is
    bounded too)."""
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["videoid", "contentUrl", "duration", "page_dir", "name"])
        for lo in range(0, rows, 100_000):
            n = min(100_000, rows - lo)
            s, a, p = rng.integers(len(SUBJECTS), size=n), rng.integers(len(ACTIONS), size=n), rng.integers(len(PLACES), size=n)
            out.writerows([1_000_000 + lo + i, f"https://example.org/{lo + i}.mp4", "PT00H00M15S", f"{(lo + i) // 1000:06d}",
                           f"{SUBJECTS[s[i]].capitalize()} {ACTIONS[a[i]]} {PLACES[p[i]]}"] for i in range(n))


# `mamc ingest` in a process of its own that prints its peak resident memory when it is done.
PROBE = ("import resource, sys; from mamc.cli import main; code = main(sys.argv[1:]); "
         "print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024); sys.exit(code)")


def measure(csv_path: Path, out: Path, extra: list[str]) -> tuple[float, float, float]:
    """Seconds of the ingest itself (as `mamc ingest` reports them), seconds of the process (with its imports)
    and its peak resident MB."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE, "ingest", "webvid", str(csv_path), "--out", str(out), *extra],
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    own = float(re.search(r"\(([\d.]+) s\)", done.stdout).group(1))
    return own, wall, float(re.search(r"^peak ([\d.]+)", done.stdout, re.M).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="10000,100000,1000000")
    parser.add_argument("--val", type=int, default=1000)
    parser.add_argument("--meta-per-concept", type=int, default=20)
    args = parser.parse_args()
    carve = ["--val", str(args.val), "--meta-per-concept", str(args.meta_per_concept)]
    print(f"{'rows':>11s} {'splits':>10s} {'ingest s':>9s} {'rows/s':>9s} {'process s':>10s} {'peak MB':>8s}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.rows.split(",")):
            path = Path(tmp) / f"results_{n}.csv"
            write_webvid_csv(path, n)
            for label, extra in (("none", []), ("val+meta", carve)):
                own, wall, peak = measure(path, Path(tmp) / f"manifest_{n}_{label}.jsonl", extra)
                print(f"{n:11,d} {label:>10s} {own:9.1f} {n / own:9,.0f} {wall:10.1f} {peak:8.0f}", flush=True)
            for f in Path(tmp).iterdir():
                f.unlink()


if __name__ == "__main__":
    main()
