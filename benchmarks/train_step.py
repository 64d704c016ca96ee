"""Seconds per training step of `mamc.train.train` — the real loop: frame cache, batches, forward, backward,
optimiser, logs, validation and checkpoints — for InfoNCE and the meta-weighted method, in this checkout and,
with `--against REV`, in a git revision of the kit (checked out in a temporary worktree), one after the other in
one invocation so that the ratio is measured under the same machine load.

    python benchmarks/train_step.py --run runs/default [--steps 200] [--against 91977bc] [--param K=V …]

Each measurement trains `--steps` steps in a scratch folder beside the data of `--run` (a run folder whose
notebook 01 has run), in a fresh process with the revision's own default profile (plus the `--param`s), and
reads `sec_per_step` from the run's summary.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

MEASURE = """
import json, sys
from mamc.config import load_config
from mamc.train import train
run_dir, method, steps, profile, params = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
cfg = load_config(profile, run_dir=run_dir, steps=steps, eval_every=steps, ckpt_every=steps, **params)
print(json.dumps(train(cfg, method, progress=False)))
"""


def measure(code_dir: Path, data_from: Path, method: str, steps: int, profile: str, params: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="train_step_") as scratch:
        for name in ("data", "cache")[: 1 + (data_from / "cache").exists()]:
            (Path(scratch) / name).symlink_to(data_from / name)
        out = subprocess.run([sys.executable, "-c", MEASURE, scratch, method, str(steps), profile, json.dumps(params)],
                             cwd=code_dir, capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONPATH": str(code_dir)})
        return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/default")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--against", help="a git revision to compare with")
    parser.add_argument("--methods", default="infonce,meta")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    repo = Path(__file__).resolve().parent.parent
    data_from = Path(args.run).resolve()
    params = dict(p.split("=", 1) for p in args.param)
    trees = {"this checkout": repo}
    with tempfile.TemporaryDirectory(prefix="train_step_rev_") as tmp:
        if args.against:
            subprocess.run(["git", "worktree", "add", "--detach", tmp, args.against], cwd=repo, check=True, capture_output=True)
            trees[f"at {args.against}"] = Path(tmp)
        try:
            rows = {(label, m): measure(tree, data_from, m, args.steps, args.profile, params)["sec_per_step"]
                    for label, tree in trees.items() for m in args.methods.split(",")}
        finally:
            if args.against:
                subprocess.run(["git", "worktree", "remove", "--force", tmp], cwd=repo, check=True)
    print(f"{args.steps} steps per measurement, {args.profile} profile {params or ''}, data of {data_from}")
    print(f"{'code':24s} {'method':8s} {'s/step':>8s} {'x this InfoNCE':>15s}")
    base = rows[("this checkout", "infonce")] if ("this checkout", "infonce") in rows else None
    for (label, m), sec in rows.items():
        print(f"{label:24s} {m:8s} {sec:8.4f} {sec / base if base else float('nan'):15.2f}")
    if args.against:
        for m in args.methods.split(","):
            ratio = rows[(f"at {args.against}", m)] / rows[("this checkout", m)]
            print(f"{m}: the revision's step / this checkout's step = {ratio:.2f}")


if __name__ == "__main__":
    main()
