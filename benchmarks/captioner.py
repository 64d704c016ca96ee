"""The embedded captioner's recipe, measured: seconds per stage and the held-out accuracy of every snapshot, for
the profile's recipe and for variants of it (`--param`), each trained in a scratch folder of its own.

    python benchmarks/captioner.py [--profile default] [--variant NAME:K=V,K=V …]

The default variant is the profile as it is; e.g. `--variant "captions only:captioner_vision_steps=0,
captioner_steps=2000,dose_captioner_steps=500"` trains without the vision stage (stage 2 then trains the tower
too). The captioner's corpus is generated once and shared by the variants (it depends on the seed and clip
settings only).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:K=V,K=V")
    args = parser.parse_args()
    from mamc.caption.tiny import train_embedded_captioner
    from mamc.config import load_config, parse_overrides
    from mamc.run import use_threads

    variants = {"profile": {}} | {v.split(":", 1)[0]: parse_overrides(v.split(":", 1)[1].split(",")) for v in args.variant}
    with tempfile.TemporaryDirectory(prefix="captioner_") as scratch:
        for i, (name, params) in enumerate(variants.items()):
            folder = Path(scratch) / str(i)
            folder.mkdir()
            if i:
                (folder / "captioner_corpus").symlink_to(Path(scratch) / "0" / "captioner_corpus")
            cfg = load_config(args.profile, run_dir=str(folder), **params)
            use_threads(cfg.threads)
            info = train_embedded_captioner(cfg, progress=False)
            stages = ", ".join(f"{stage} {sec:.0f} s" for stage, sec in info["seconds"].items())
            print(f"{name} {params or ''}: {stages}")
            for steps, accuracy in info["heldout_accuracy"].items():
                print(f"  after {steps:>5s} steps: " + "  ".join(f"{k} {v:5.1f}" for k, v in accuracy.items()))


if __name__ == "__main__":
    main()
