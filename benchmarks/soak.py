"""Soak test of headless execution: the smoke profile run N times back to back while other processes load every
core; counts hangs (runs stopped by the watchdog or by the outer time limit) and failures, and checks that
every run wrote the same metrics and tables (results must not depend on machine load).

    python benchmarks/soak.py [--runs 20] [--load 2] [--out runs/soak] [--limit 1200]

A benchmark, not a test: it takes about half an hour. Record its output in docs/MEASUREMENTS.md.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BURN = "while True: pass"


def digest(run: Path) -> str:
    """Hash of metrics.json and every table: what must be identical across runs."""
    h = hashlib.sha256()
    for path in [run / "metrics.json", *sorted((run / "tables").glob("*"))]:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--load", type=int, default=2, help="busy-looping processes beside the runs")
    parser.add_argument("--out", default="runs/soak")
    parser.add_argument("--limit", type=float, default=1200, help="outer time limit per run, seconds")
    args = parser.parse_args()
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(args.load)]
    rows = []
    try:
        for i in range(args.runs):
            run = Path(args.out) / f"run{i:02d}"
            shutil.rmtree(run, ignore_errors=True)
            start = time.monotonic()
            try:
                done = subprocess.run([sys.executable, "-m", "mamc", "reproduce", "--profile", "smoke", "--out", str(run),
                                       "--quiet"], capture_output=True, text=True, timeout=args.limit)
                code, err = done.returncode, done.stderr.strip().splitlines()[-1:] or [""]
            except subprocess.TimeoutExpired:
                code, err = None, [f"no result within {args.limit:g} s"]
            wall = time.monotonic() - start
            hang = code is None or "watchdog" in err[0]
            rows.append({"run": i, "exit": code, "wall_s": wall, "hang": hang,
                         "digest": digest(run) if code == 0 else "-", "error": err[0][:160]})
            r = rows[-1]
            print(f"run {i:2d}  exit {str(code):>4}  {wall:6.1f} s  hang {str(hang):5}  results {r['digest']}  {r['error']}",
                  flush=True)
    finally:
        for b in burners:
            b.kill()
    walls = [r["wall_s"] for r in rows]
    digests = {r["digest"] for r in rows if r["exit"] == 0}
    print(f"\n{len(rows)} runs with {args.load} busy processes: {sum(r['hang'] for r in rows)} hangs, "
          f"{sum(r['exit'] != 0 for r in rows)} failures; wall time median {statistics.median(walls):.1f} s, "
          f"min {min(walls):.1f} s, max {max(walls):.1f} s; distinct results among successful runs: {len(digests)}")
    return 0 if all(r["exit"] == 0 for r in rows) and len(digests) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
