"""Variants of a training run, trained for real to their validation plateau and compared in one invocation: test
t2v R@1 over seeds (mean and 95% interval), validation R-sum at the selected step, steps, seconds per step as a
ratio to the first variant, and each variant's difference from a reference variant, paired by seed.

    python benchmarks/variants.py --run runs/default --variant NAME:method=M[,K=V…] … [--against NAME]
                                  [--seeds 0,1,2] [--profile default] [--param K=V …]

Examples (the figures in docs/MEASUREMENTS.md):

    # the fast meta mode against the exact one
    python benchmarks/variants.py --variant "InfoNCE:method=infonce" --variant "meta, exact:method=meta,meta_interval=1" \\
        --variant "meta, every 5 steps:method=meta,meta_interval=5" --against "meta, exact"
    # the default model's shape against the wider one it replaced
    python benchmarks/variants.py --variant "width 64, MLP 4x:method=infonce,video_width=64,video_mlp_ratio=4" \\
        --variant "width 48, MLP 2x:method=infonce" --against "width 64, MLP 4x"

The runs go to a scratch folder beside the data of `--run` (a run folder whose notebook 01 has run), two at a
time (`parallel_runs` of the profile), each with the profile's plateau rule.
"""
from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/default")
    parser.add_argument("--variant", action="append", required=True, metavar="NAME:method=M,K=V")
    parser.add_argument("--against", help="the variant the others are compared with (default: the first)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    from mamc.config import coerce, load_config, parse_overrides
    from mamc.evaluate import mean_ci
    from mamc.experiments import evaluate_test
    from mamc.pool import in_parallel
    from mamc.runs import METHODS

    source = Path(args.run).resolve()
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory(prefix="variants_") as scratch:
        for name in ("data", "cache")[: 1 + (source / "cache").exists()]:
            (Path(scratch) / name).symlink_to(source / name)
        cfg = load_config(args.profile, run_dir=scratch, **parse_overrides(args.param))
        variants = {}
        for spec in args.variant:
            label, settings = spec.split(":", 1)
            pairs = settings.split(",")
            method = next(p.split("=", 1)[1] for p in pairs if p.startswith("method="))
            params = parse_overrides([p for p in pairs if not p.startswith("method=")])
            variants[label] = (method, replace(cfg, **{k: coerce(k, v) for k, v in params.items()}))
        jobs = [(run_cfg, method, seed, f"{i}_s{seed}") for i, (method, run_cfg) in enumerate(variants.values())
                for seed in seeds]
        summaries = in_parallel(cfg, _job, sorted(jobs, key=lambda j: not METHODS[j[1]].meta), "train", progress=False)
        by_name = {s["name"]: s for s in summaries}
        print(f"{cfg.profile} profile, seeds {seeds}, {cfg.parallel_runs} runs side by side, patience {cfg.patience}")
        print(f"{'variant':28s} {'t2v R@1':>8s} {'95% interval':>16s} {'val rsum':>9s} {'steps':>6s} {'s/step':>8s} "
              f"{'x first':>8s}")
        base, per_seed = None, {}
        for i, (label, (_, run_cfg)) in enumerate(variants.items()):
            names = [f"{i}_s{seed}" for seed in seeds]
            per_seed[label] = [evaluate_test(run_cfg, n)["t2v"]["R@1"] for n in names]
            r1 = mean_ci(per_seed[label])
            sec = sum(by_name[n]["sec_per_step"] for n in names) / len(names)
            base = base or sec
            val = sum(by_name[n]["best"]["val/rsum"] for n in names) / len(names)
            steps = sum(by_name[n]["last_step"] for n in names) / len(names)
            print(f"{label:28s} {r1['mean']:8.2f} [{r1['lo']:6.2f}, {r1['hi']:6.2f}] {val:9.1f} {steps:6.0f} {sec:8.4f} "
                  f"{sec / base:8.2f}")
        reference = args.against or next(iter(variants))
        for label in variants:
            if label != reference:
                diff = mean_ci([a - b for a, b in zip(per_seed[label], per_seed[reference])])
                print(f"paired by seed, {label} − {reference}: {diff['mean']:+.2f} [{diff['lo']:+.2f}, {diff['hi']:+.2f}] "
                      "t2v R@1 points")


def _job(job: tuple) -> dict:
    from mamc.train import train

    cfg, method, seed, name = job
    return train(cfg, method, seed, name=name, progress=False)


if __name__ == "__main__":
    main()
