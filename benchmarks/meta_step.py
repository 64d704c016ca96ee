"""Cost of the meta step: time per training step and peak memory of InfoNCE, the exact meta step (the training
forward shared by the virtual and the real update, as `mamc.train` does), the same with the forward recomputed
for the real update (the kit before the sharing), the meta step every k steps, and a virtual step restricted to
the heads and last block, as ratios to InfoNCE (one run, `cfg.threads` torch threads).

    python benchmarks/meta_step.py [--steps 20] [--batch 64] [--interval 4] [--profile default] [--param K=V …]

With `--profile paper --param video_backbone=DIR --param text_model=DIR` (DIR: a CLIP checkpoint, e.g. one of
ViT-B/32's shape from `mamc.gpu_check.random_clip(DIR)`) it measures the paper model's
step, text tower trained on tokens: the basis of the GPU memory estimate in docs/PAPER_RUN.md.

Each variant runs in a fresh process so that its peak memory (RSS on CPU, allocator peak on CUDA) is its own;
the figure is the growth over the process's footprint once the model is built (activations, graphs, grads).
"""
from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import resource
import time

import torch


def run_variant(name: str, steps: int, batch: int, interval: int, profile: str, params: dict, queue) -> None:
    from mamc.config import load_config
    from mamc.losses import contrastive_loss
    from mamc.meta import WeightNet, call_with, meta_kernels, meta_step, sample_weights, select_params
    from mamc.models import build_model
    from mamc.run import resolve_device, use_threads

    torch.manual_seed(0)
    cfg = load_config(profile, **params)
    use_threads(cfg.threads)
    device = resolve_device("auto")
    model = build_model(cfg).to(device)
    net = WeightNet(cfg.meta_hidden).to(device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    wopt = torch.optim.Adam(net.parameters(), lr=1e-3)
    frames = torch.randn(batch, cfg.frames, 3, cfg.frame_size, cfg.frame_size, device=device)
    text = (torch.randn(batch, model.text.dim, device=device) if cfg.freeze_text
            else model.text.tokenize(["a man in a red shirt rides a bike down a city street at night"] * batch, device))
    params = select_params(model, "head" if name == "meta, restricted virtual step" else "all")
    every = interval if name.startswith("meta, every") else 1

    def losses(m, p):
        v, t = call_with(m, p, frames, text)
        return contrastive_loss("subtractive", v, t, cfg.margin, cfg.temperature)

    def step(i: int) -> None:
        meta_now = name != "InfoNCE" and i % every == 0
        with meta_kernels() if meta_now else contextlib.nullcontext():
            ell = losses(model, None)
        if meta_now:
            meta_step(model, net, wopt, ell, losses, cfg.virtual_lr, params)
            if name == "meta, exact, forward recomputed":
                ell = losses(model, None)
        w = sample_weights(net, ell).detach() if name != "InfoNCE" else torch.ones_like(ell)
        opt.zero_grad()
        (w * ell).mean().backward()
        opt.step()

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.type == "cuda":
        torch.cuda.synchronize()
        base_cuda = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    step(0)
    start = time.perf_counter()
    for i in range(1, steps + 1):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - base_cuda) / 2**20
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    queue.put((name, (time.perf_counter() - start) / steps, peak, str(device)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--interval", type=int, default=4)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--only", help="comma-separated variant numbers to run (1-5), e.g. 1,2")
    args = parser.parse_args()
    from mamc.config import parse_overrides

    params = parse_overrides(args.param)
    variants = ["InfoNCE", "meta, exact", "meta, exact, forward recomputed", f"meta, every {args.interval} steps",
                "meta, restricted virtual step"]
    variants = [v for i, v in enumerate(variants, 1) if not args.only or str(i) in args.only.split(",")]
    ctx = mp.get_context("spawn")
    results = []
    for name in variants:
        queue = ctx.Queue()
        proc = ctx.Process(target=run_variant, args=(name, args.steps, args.batch, args.interval, args.profile, params, queue))
        proc.start()
        results.append(queue.get())
        proc.join()
    base_t, base_m = results[0][1], results[0][2]
    print(f"profile {args.profile} {params}")
    print(f"device {results[0][3]}, batch {args.batch}, {args.steps} timed steps; memory = growth of the peak "
          f"{'allocated memory' if 'cuda' in results[0][3] else 'RSS'} over the model's own footprint, in MiB")
    print(f"{'variant':34s} {'s/step':>8s} {'x InfoNCE':>10s} {'step MiB':>9s} {'x InfoNCE':>10s}")
    for name, t, m, _ in results:
        print(f"{name:34s} {t:8.3f} {t / base_t:10.2f} {m:9.0f} {m / base_m:10.2f}")


if __name__ == "__main__":
    main()
