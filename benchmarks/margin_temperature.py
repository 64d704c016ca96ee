"""How large a subtractive margin can be at a given temperature: the evidence behind the paper profile's margin.

At temperature τ the margin adds (cos(θ − m) − cos θ)/τ ≈ m·sin θ/τ logits to every positive. At the paper
profile's τ = 0.01 and a typical positive angle (cos θ ≈ 0.3), m = 0.1 rad adds ≈ 9.5 logits: the positive
already wins its softmax, the loss starts near zero and barely trains. This script measures both sides:

1. at initialisation (the embedded default model, one batch): loss and gradient norm of the margin loss per m,
   relative to InfoNCE (m = 0);
2. after training on the embedded benchmark at this τ: test t2v R@1 per m over several seeds.

    python benchmarks/margin_temperature.py [--temperature 0.01] [--margins 0,0.005,0.01,0.02,0.05,0.1]
                                            [--seeds 0,1,2] [--run runs/margin_temperature]

Prints one table; writes `margin_temperature.json` in the run folder.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np
import torch


def at_initialisation(cfg, margins: list[float]) -> list[dict]:
    """Loss and gradient norm of the first batch for each margin, same model and batch."""
    from mamc.data.loaders import load_frames
    from mamc.data.prepare import load_rows
    from mamc.embed import frozen_text_features, text_input
    from mamc.losses import contrastive_loss
    from mamc.models import build_model, normalize_frames
    from mamc.run import Run

    torch.manual_seed(0)
    model = build_model(cfg)
    rows = load_rows(cfg, "train")[: cfg.batch_size]
    feats = frozen_text_features(model, [r["caption"] for r in rows], Run(cfg).text_cache, "cpu")
    frames = normalize_frames(load_frames(rows, Run(cfg).frame_cache, cfg.frames))
    out = []
    for m in margins:
        model.zero_grad()
        v, t = model(frames, text_input(model, [r["caption"] for r in rows], feats, "cpu"))
        loss = contrastive_loss("subtractive", v, t, m, cfg.temperature).mean()
        loss.backward()
        grad = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters() if p.grad is not None))
        cos = torch.nn.functional.cosine_similarity(v, t).mean().detach()
        out.append({"margin": m, "initial loss": float(loss.detach()), "initial grad norm": float(grad),
                    "positive logit gain": float((torch.cos(torch.arccos(cos) - m) - cos) / cfg.temperature)})
    return out


def main() -> None:
    from mamc.config import load_config
    from mamc.data.prepare import ensure_frames, load_rows, prepare_corpus
    from mamc.evaluate import mean_ci
    from mamc.experiments import evaluate_test
    from mamc.run import use_threads
    from mamc.train import train

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--temperature", type=float, default=0.01)
    p.add_argument("--margins", default="0,0.005,0.01,0.02,0.05,0.1")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--run", default="runs/margin_temperature")
    args = p.parse_args()
    margins = [float(m) for m in args.margins.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    cfg = load_config("default", run_dir=args.run, temperature=args.temperature)
    use_threads(cfg.threads)
    prepare_corpus(cfg)
    ensure_frames(cfg, load_rows(cfg))
    rows = at_initialisation(cfg, margins)
    for row in rows:
        r1 = []
        for seed in seeds:
            name = f"margin{row['margin']:g}_s{seed}"
            train(replace(cfg, margin=row["margin"]), "margin", seed, name=name, progress=False)
            r1.append(evaluate_test(replace(cfg, margin=row["margin"]), name)["t2v"]["R@1"])
        ci = mean_ci(r1)
        row.update({"test t2v R@1": ci["mean"], "std": ci["std"], "95% CI": [ci["lo"], ci["hi"]], "per seed": r1})
        print(json.dumps(row), flush=True)
    base = rows[0]["initial grad norm"] or float("nan")
    print(f"\ntemperature {args.temperature}, {cfg.steps} steps, seeds {seeds} (embedded default profile)")
    print(f"{'margin':>8} {'gain (logits)':>14} {'init loss':>10} {'grad / InfoNCE':>15} {'t2v R@1':>16}")
    for r in rows:
        print(f"{r['margin']:>8g} {r['positive logit gain']:>14.2f} {r['initial loss']:>10.4f} "
              f"{r['initial grad norm'] / base:>15.3f} {r['test t2v R@1']:>9.1f} ± {np.nan_to_num(r['std']):.1f}")
    (cfg.run_path / "margin_temperature.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
