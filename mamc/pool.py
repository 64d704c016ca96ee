"""Independent jobs in spawned worker processes, one core each: how the kit keeps both cores of a small machine
busy without a second torch thread (which a busy machine punishes)."""
from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

from mamc.config import Config
from mamc.distributed import launched
from mamc.lock import run_lock, shared_with_children
from mamc.progress import tqdm
from mamc.run import quiet_libraries, use_threads


@contextmanager
def worker_pool(cfg: Config, desc: str, workers: int | None = None) -> Iterator[ProcessPoolExecutor | None]:
    """`workers` (default `cfg.parallel_runs`) spawned worker processes, each starting clean with the run
    folder's lock shared, for one or more `in_parallel` calls: what a worker imported or loaded for one job stays
    warm for the next. None when the jobs run in this process: one worker, or a process of a torchrun launch (its
    ranks take every job together, one after the other, each with its share of every batch)."""
    workers = cfg.parallel_runs if workers is None else workers
    if cfg.parallel_runs <= 1 or workers <= 1 or launched():
        yield None
        return
    with run_lock(cfg.run_path, f"mamc {desc}") as lock, shared_with_children(lock):
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                                 initargs=(cfg.threads,)) as pool:
            yield pool


def _start_worker(threads: int) -> None:
    """Every job in a worker runs with the configured torch thread count (without it, each worker would start as
    many threads as the machine has cores, and two workers on two cores slow each other down many times over)."""
    quiet_libraries()
    use_threads(threads)


def in_parallel(cfg: Config, fn: Callable[[tuple], Any], jobs: list[tuple], desc: str, progress: bool,
                then: tuple[set[int], Callable[[], list[tuple]]] | None = None,
                pool: ProcessPoolExecutor | None = None) -> list:
    """`fn` over independent jobs, in the worker processes of `pool`, or of a pool of their own (`worker_pool`),
    or in this process when `cfg.parallel_runs` is 1; results in the jobs' order, identical either way. With
    `then` = (indices, more): once the jobs at those indices have finished, `more()` gives further jobs (which
    may read what those wrote), queued in the same pool behind the rest — no worker idles until a whole batch
    has ended. Their results follow the first jobs'."""
    waits, more = then if then is not None else (set(), None)
    if pool is None:
        workers = cfg.parallel_runs if more is not None else min(cfg.parallel_runs, len(jobs))
        with worker_pool(cfg, desc, workers) as pool:
            if pool is None:
                results = [fn(job) for job in jobs]
                return results + ([fn(job) for job in more()] if more is not None else [])
            return in_parallel(cfg, fn, jobs, desc, progress, then, pool)
    with tqdm(total=len(jobs), desc=desc, disable=not progress, unit="job") as bar:
        def submit(batch: list[tuple]) -> list[Future]:
            futures = [pool.submit(fn, job) for job in batch]
            for future in futures:
                future.add_done_callback(lambda _: bar.update())
            return futures

        futures = submit(jobs)
        if more is not None:
            for i in sorted(waits):
                futures[i].result()
            extra = more()
            bar.total += len(extra)
            futures += submit(extra)
        return [future.result() for future in futures]
