"""The fast meta mode against the exact one, trained for real: test t2v R@1 over seeds (mean and 95% interval)
and seconds per training step as a ratio to InfoNCE, all measured in one run.

    python benchmarks/meta_fast.py --run runs/default [--interval 5] [--seeds 0,1,2] [--param K=V …]

The runs go to a scratch folder beside the data of `--run` (a run folder whose notebook 01 has run), each to
its validation plateau like the default profile's; two at a time (`parallel_runs`). The exact mode takes the
bi-level step at every training step; the fast mode every `--interval` steps (the MLP's weights are used at
every step).
"""
from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/default")
    parser.add_argument("--interval", type=int, default=5)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    from mamc.config import load_config, parse_overrides
    from mamc.evaluate import mean_ci
    from mamc.experiments import _in_parallel, evaluate_test
    source = Path(args.run).resolve()
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory(prefix="meta_fast_") as scratch:
        for name in ("data", "cache")[: 1 + (source / "cache").exists()]:
            (Path(scratch) / name).symlink_to(source / name)
        cfg = load_config(args.profile, run_dir=scratch, **parse_overrides(args.param))
        variants = {"InfoNCE": ("infonce", cfg), "meta, exact": ("meta", replace(cfg, meta_interval=1)),
                    f"meta, every {args.interval} steps": ("meta", replace(cfg, meta_interval=args.interval))}
        jobs = [(run_cfg, method, seed, f"{i}_s{seed}") for i, (method, run_cfg) in enumerate(variants.values())
                for seed in seeds]
        summaries = _in_parallel(cfg, _job, sorted(jobs, key=lambda j: j[1] != "meta"), "train", progress=False)
        by_name = {s["name"]: s for s in summaries}
        print(f"{cfg.profile} profile, seeds {seeds}, {cfg.parallel_runs} runs side by side, patience {cfg.patience}")
        print(f"{'variant':24s} {'t2v R@1':>8s} {'95% interval':>16s} {'s/step':>8s} {'x InfoNCE':>10s} {'steps':>6s}")
        base, per_seed = None, {}
        for i, (label, (_, run_cfg)) in enumerate(variants.items()):
            names = [f"{i}_s{seed}" for seed in seeds]
            r1 = mean_ci([evaluate_test(run_cfg, n)["t2v"]["R@1"] for n in names])
            sec = sum(by_name[n]["sec_per_step"] for n in names) / len(names)
            base = base or sec
            steps = sum(by_name[n]["last_step"] for n in names) / len(names)
            print(f"{label:24s} {r1['mean']:8.2f} [{r1['lo']:6.2f}, {r1['hi']:6.2f}] {sec:8.4f} {sec / base:10.2f} {steps:6.0f}")
            per_seed[label] = [evaluate_test(run_cfg, n)["t2v"]["R@1"] for n in names]
        exact, fast = list(per_seed)[1:]
        diff = mean_ci([a - b for a, b in zip(per_seed[fast], per_seed[exact])])
        print(f"paired by seed, {fast} − exact: {diff['mean']:+.2f} [{diff['lo']:+.2f}, {diff['hi']:+.2f}] t2v R@1 points")


def _job(job: tuple) -> dict:
    from mamc.train import train

    cfg, method, seed, name = job
    return train(cfg, method, seed, name=name, progress=False)


if __name__ == "__main__":
    main()
