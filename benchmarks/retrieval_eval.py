"""Time and peak memory of the retrieval metrics for 1k, 10k and 50k queries (square similarity matrices).

    python benchmarks/retrieval_eval.py [--sizes 1000 10000 50000]

Peak memory is reported beyond the similarity matrix itself (RSS growth while the metrics run); each size runs
in a fresh process.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time


def measure(n: int, queue) -> None:
    import torch

    from mamc.evaluate import retrieval_metrics, video_text_retrieval

    torch.manual_seed(0)
    sim = torch.randn(n, n)
    sim.diagonal().add_(2.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    metrics = retrieval_metrics(sim)
    t_single = time.perf_counter() - start
    start = time.perf_counter()
    video_text_retrieval(sim)
    t_both = time.perf_counter() - start
    extra = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    queue.put((n, n * n * 4 / 2**20, t_single, t_both, extra, metrics["R@1"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    print(f"{'queries':>8s} {'sim MiB':>9s} {'t2v s':>8s} {'t2v+v2t s':>10s} {'extra peak MiB':>15s}")
    for n in args.sizes:
        queue = ctx.Queue()
        proc = ctx.Process(target=measure, args=(n, queue))
        proc.start()
        n, sim_mb, t1, t2, extra, _ = queue.get()
        proc.join()
        print(f"{n:8d} {sim_mb:9.0f} {t1:8.2f} {t2:10.2f} {extra:15.0f}")


if __name__ == "__main__":
    main()
