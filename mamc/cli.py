"""`mamc …` commands: `reproduce` runs the notebooks; the others are each notebook's main step for batch use."""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from mamc.config import PROFILES, Config, load_config, parse_overrides


def _run_config(args) -> Config:
    """The run folder's saved configuration when it has one, else the profile's; `--param` overrides both."""
    from mamc.run import load_run_config, save_config, use_threads

    overrides = parse_overrides(args.param or [])
    run = Path(args.run)
    cfg = load_run_config(run, **overrides) if (run / "config.json").exists() else load_config(
        args.profile, run_dir=str(run.resolve()), **overrides)
    save_config(cfg)
    use_threads(cfg.threads)
    return cfg


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="run folder (created when missing)")
    p.add_argument("--profile", choices=PROFILES, default="default", help="profile for a new run folder")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="configuration override (repeatable)")


def cmd_reproduce(args) -> int:
    from mamc.reproduce import reproduce
    from mamc.watchdog import Limits

    only = args.only.split(",") if args.only else None
    limits = Limits(idle=args.idle_timeout, reply=args.reply_timeout, silence=args.silence_timeout)
    out = reproduce(args.profile, args.out, args.seed, args.device, args.param, only, progress=not args.quiet,
                    watchdog=limits)
    print(f"run folder: {out}")
    return 0


def cmd_synth(args) -> int:
    from mamc.data.synthetic import generate_corpus

    print(generate_corpus(_run_config(args)))
    return 0


def cmd_ingest(args) -> int:
    from mamc.data.ingest import ingest

    done = ingest(args.dataset, args.annotations, args.out, split=args.split, videos=args.videos, extra=args.extra,
                  val=args.val, meta_per_concept=args.meta_per_concept, seed=args.seed)
    print(f"{done['rows']} rows {done['splits']} → {args.out} ({done['seconds']:.2f} s)")
    return 0


def cmd_frames(args) -> int:
    from mamc.data.prepare import ensure_frames, load_rows, prepare_corpus
    from mamc.run import Run

    cfg = _run_config(args)
    prepare_corpus(cfg)
    counts = ensure_frames(cfg, load_rows(cfg), progress=True)
    cache = Run(cfg).frame_cache
    print(json.dumps(counts), f"cache: {cache}")
    if counts["failed"]:
        print(f"{counts['failed']} video(s) failed: see {cache / 'failures.jsonl'}", file=sys.stderr)
    return 0


def _my_shards(spec: str | None) -> slice:
    """This process's shards: the range A:B (all when not given), every world-th of it under torchrun or srun."""
    from mamc.distributed import launch_rank, launched

    lo, _, hi = (spec or ":").partition(":")
    rank, world = launch_rank() if launched() else (0, 1)
    return slice(int(lo or 0) + rank, int(hi) if hi else None, world)


def cmd_shard(args) -> int:
    from mamc.data.prepare import prepare_corpus
    from mamc.data.shards import make_shards
    from mamc.distributed import launch_rank, launched
    from mamc.run import Run

    cfg = _run_config(args)
    prepare_corpus(cfg)
    shards, rank = _my_shards(args.range), (launch_rank()[0] if launched() else 0)
    failed = 0
    for split in args.splits.split(","):
        counts = make_shards(Run(cfg).path("manifest"), split, Run(cfg).shards(split), cfg.data_dir, cfg.clip_frames,
                             cfg.frame_size, cfg.shard_size, shards, progress=rank == 0)
        print(json.dumps(counts), f"shards: {Run(cfg).shards(split)}")
        failed += counts["failed"]
    if failed:
        print(f"{failed} clip(s) failed to decode: see the records <shard>.json beside the shards", file=sys.stderr)
    return 0


def cmd_caption(args) -> int:
    from mamc.caption.jobs import caption_quality, caption_videos, ensure_captioner
    from mamc.distributed import launch_rank, launched, local_device
    from mamc.run import resolve_device

    cfg = _run_config(args)
    if args.shards:
        from mamc.caption.sidecars import caption_shards

        if launched():
            cfg = replace(cfg, device=str(local_device(resolve_device(cfg.device))))
        if ensure_captioner(cfg, args.model) is not None:
            print(f"embedded captioner trained by this job: {cfg.run_path / 'captioner'}", file=sys.stderr)
        print(json.dumps(caption_shards(cfg, args.model, _my_shards(args.range), progress=not launched()), indent=2))
        return 0
    shard, num_shards = args.shard, args.num_shards
    if launched() and num_shards == 1:  # under torchrun each rank captions its shard of the videos, on its own GPU;
        shard, num_shards = launch_rank()  # no process group: the shards never talk (and the captioner trains alone)
        cfg = replace(cfg, device=str(local_device(resolve_device(cfg.device))))
    if ensure_captioner(cfg, args.model) is not None:
        print(f"embedded captioner trained (or its measurement finished) by this job: {cfg.run_path / 'captioner'}",
              file=sys.stderr)
    stats = caption_videos(cfg, model=args.model, shard=shard, num_shards=num_shards, limit=args.limit)
    print(json.dumps(stats, indent=2))
    quality = caption_quality(cfg) if num_shards == 1 and not args.limit else None
    if quality is not None:  # None: the dataset has no ground truth to score captions against
        print(json.dumps({"caption accuracy (%)": quality["generated"]}))
    return 0


def cmd_train(args) -> int:
    from mamc.distributed import rank
    from mamc.experiments import run_experiments
    from mamc.run import Run
    from mamc.runs import ablation_name, knobs_of
    from mamc.train import train

    cfg = _run_config(args)
    if args.method == "ablation":
        run_experiments(cfg)
        return 0
    if not knobs_of(args.method):
        summary = train(cfg, args.method, args.seed)
    else:
        # A method with a tuned knob: its tuning runs on validation first, then this seed at the chosen value.
        seed = cfg.seed if args.seed is None else args.seed
        run_experiments(cfg, methods=[args.method], seeds=[seed], sweep=False)
        summary = Run(cfg).read("summary", ablation_name(cfg, args.method, seed))
    if rank() == 0:  # under torchrun, once
        print(json.dumps(summary, indent=2))
    return 0


def cmd_evaluate(args) -> int:
    from mamc.experiments import evaluate_all
    from mamc.report.tables import build_tables

    cfg = _run_config(args)
    evaluate_all(cfg, qa=not args.no_qa)
    metrics = build_tables(cfg, compare=args.compare, draws=args.captioner_draws)
    print(f"tables: {cfg.run_path / 'tables'}; metrics: {cfg.run_path / 'metrics.json'} ({len(metrics['runs'])} runs)")
    return 0


def cmd_figures(args) -> int:
    from mamc.report.figures import build_figures
    from mamc.run import load_run_config

    made = build_figures(load_run_config(args.run), args.only.split(",") if args.only else None)
    for name, paths in made.items():
        print(name, *[str(p) for p in paths])
    return 0


def cmd_lab(args) -> int:
    from mamc.lab import lab_command, prepare_lab
    from mamc.run import load_run_config

    run = Path(args.run)
    profile = load_run_config(run).profile if (run / "config.json").exists() else args.profile
    cmd = lab_command(prepare_lab(run, profile), args.port, args.browser)
    print(" ".join(cmd), flush=True)
    os.execv(cmd[0], cmd)


def cmd_gpu_check(args) -> int:
    from mamc.gpu_check import gpu_check, report

    def sizes(text: str | None) -> list[int] | None:
        return [int(b) for b in text.split(",")] if text else None

    results = gpu_check(args.out, tiny=args.tiny, batches=sizes(args.batches), caption_batches=sizes(args.caption_batches),
                        parts=tuple(sizes(args.parts)), device=args.device)
    print(report(results))
    failed = [p for p in ("torchrun", "dry_run") if results.get(p, {}).get("returncode")]
    if failed:
        print(f"mamc gpu-check: {', '.join(failed)} failed (see {args.out}/gpu_check.json)", file=sys.stderr)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    from mamc.config import METHODS
    from mamc.data.ingest import FORMATS

    parser = argparse.ArgumentParser(prog="mamc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("reproduce", help="run the notebooks in order with papermill into a run folder")
    p.add_argument("--profile", choices=PROFILES, default="default")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 …")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="notebook parameter or configuration field (repeatable); unknown keys are an error")
    p.add_argument("--only", help="comma-separated notebook numbers to run, e.g. 04,05 (reuses saved artifacts)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--idle-timeout", type=float, default=600, metavar="S",
                   help="watchdog: stop a cell after S seconds without kernel CPU use or message (0: off)")
    p.add_argument("--reply-timeout", type=float, default=60, metavar="S",
                   help="watchdog: stop a cell whose reply is missing S seconds after the kernel went idle (0: off)")
    p.add_argument("--silence-timeout", type=float, default=0, metavar="S",
                   help="watchdog: stop a cell after S seconds without any message, even while busy (0: off)")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("synth", help="generate the embedded corpus into RUN/data")
    _common(p)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("ingest", help="convert a public dataset's annotations into a manifest")
    p.add_argument("dataset", choices=sorted(FORMATS))
    p.add_argument("annotations", nargs="+", help="annotation file(s) in the dataset's published format")
    p.add_argument("--out", required=True, help="manifest to write (JSONL)")
    p.add_argument("--split", help="split name for the rows (default: from the files where they say)")
    p.add_argument("--videos", default="videos", help="video folder, relative to the data root")
    p.add_argument("--extra", nargs="*", default=[], help="extra files, e.g. the MSR-VTT 9k train list")
    p.add_argument("--val", type=int, default=0, metavar="N", help="carve a val split of N training videos")
    p.add_argument("--meta-per-concept", type=int, default=0, metavar="K",
                   help="carve a meta split of K clean training videos per concept (see mamc/data/splits.py)")
    p.add_argument("--seed", type=int, default=0, help="seed of the val/meta draws")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("frames", help="decode every video once into the frame cache")
    _common(p)
    p.set_defaults(func=cmd_frames)

    p = sub.add_parser("shard", help="decode the clips into WebDataset tar shards (the data path past one machine)")
    _common(p)
    p.add_argument("--splits", default="train,meta,val", help="comma-separated splits to shard")
    p.add_argument("--range", metavar="A:B", help="only shards A…B-1 of each split (one task of a Slurm array); "
                   "under torchrun or srun each rank takes every world-th shard of it")
    p.set_defaults(func=cmd_shard)

    p = sub.add_parser("caption", help="caption the training videos with a VLM (resumable)")
    _common(p)
    p.add_argument("--model", help="hub id or local path of a LLaVA-family checkpoint (default: the run's captioner)")
    p.add_argument("--shard", type=int, default=0,
                   help="this job's shard of the videos; shards of one run folder run side by side (one per GPU)")
    p.add_argument("--num-shards", type=int, default=1)
    p.add_argument("--limit", type=int, help="caption at most this many videos")
    p.add_argument("--shards", action="store_true", help="caption the clips of the run's training shards (`mamc "
                   "shard`) into caption sidecar shards, one job unit per shard")
    p.add_argument("--range", metavar="A:B", help="with --shards: only shards A…B-1 (one task of a Slurm array); "
                   "under torchrun or srun each rank takes every world-th shard of it")
    p.set_defaults(func=cmd_caption)

    p = sub.add_parser("train", help="train one method, or (ablation) every method × seed and the margin sweep",
                       description="Train one method for one seed, or (--method ablation) every method of the run for "
                       "every seed, with the margin sweep. A method with a tuned knob trains its tuning runs first, on "
                       "the first seed: margin and additive one run per nonzero value of margin_sweep, meta one per value of "
                       "meta_lr_sweep, mama both of those; its run is then named after the values chosen on validation "
                       "(e.g. mama_s0_m0.1_lr0.001). infonce and vlm train their one run. Under torchrun every rank "
                       "takes every run, with its share of each global batch.")
    _common(p)
    p.add_argument("--method", choices=[*METHODS, "ablation"], default="mama")
    p.add_argument("--seed", type=int)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="test-set retrieval and QA for every trained run; tables and metrics.json")
    _common(p)
    p.add_argument("--no-qa", action="store_true")
    p.add_argument("--compare", nargs="*", default=[], metavar="RUN",
                   help="paper-profile run folders whose results fill the paper table's kit column")
    p.add_argument("--captioner-draws", nargs="*", default=[], metavar="RUN",
                   help="run folders of the same data with another captioner_seed: C3 under each captioner")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("lab", help="JupyterLab on a run folder's own (signed) copies of the notebooks")
    p.add_argument("--run", required=True, help="run folder (created with fresh notebook copies when missing)")
    p.add_argument("--profile", choices=PROFILES, default="default", help="profile for a new run folder")
    p.add_argument("--port", type=int)
    p.add_argument("--browser", action="store_true", help="open a browser (default: print the URL only)")
    p.set_defaults(func=cmd_lab, lock=False)

    p = sub.add_parser("gpu-check", help="measure the paper path on this machine's GPU (memory, speed, precision, "
                                         "NCCL, caption throughput, the dry run); see docs/PAPER_RUN.md §5")
    p.add_argument("--out", required=True, help="folder for gpu_check.json, gpu_check.md and the models built")
    p.add_argument("--tiny", action="store_true", help="tiny shapes (the test suite's CPU run of the same code)")
    p.add_argument("--batches", metavar="B,B…", help="training batch sizes (default 16,32,64,128; tiny 2,4)")
    p.add_argument("--caption-batches", metavar="B,B…", help="caption batch sizes (default 1,4,16; tiny 1,2)")
    p.add_argument("--parts", default="1,2,3,4,5", help="which parts to run (see the command's docs)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda:1 …")
    p.set_defaults(func=cmd_gpu_check)

    p = sub.add_parser("figures", help="rebuild every figure from a run folder's saved artifacts")
    p.add_argument("--run", required=True)
    p.add_argument("--only", help="comma-separated figure names (default: all)")
    p.set_defaults(func=cmd_figures)
    return parser


def main(argv: list[str] | None = None) -> int:
    from mamc.distributed import adopt_slurm
    from mamc.lock import run_lock
    from mamc.preempt import PREEMPTED, Preempted

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    adopt_slurm()  # `srun mamc …` without torchrun: each task a rank
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "run", None) and getattr(args, "lock", True):
            # Caption shards share the folder (each holds its own shard); every other command holds it alone.
            part = f"caption-shard-{args.shard}-of-{args.num_shards}" if getattr(args, "num_shards", 1) > 1 else None
            part = f"{args.command}-range-{args.range}" if getattr(args, "range", None) else part
            with run_lock(Path(args.run), f"mamc {args.command}", part):
                return args.func(args)
        return args.func(args)
    except Preempted as err:
        print(f"mamc {args.command}: preempted: {err}", file=sys.stderr)
        return PREEMPTED
    except (ValueError, KeyError, OSError, RuntimeError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"mamc {args.command}: error: {message}", file=sys.stderr)
        return 2
