"""Independent jobs in worker processes: results in the jobs' order, identical in one process or several."""
from dataclasses import replace

from mamc.pool import in_parallel


def _mark(job):
    folder, n = job
    (folder / f"done{n}").touch()
    return n


def test_jobs_that_wait_for_others_join_the_same_pool_once_those_have_finished(smoke_cfg, tmp_path):
    """The ablation's other seeds need their tuning runs' choices: they are queued once those runs are done, in
    the pool that is still busy with the rest, and their results follow."""
    def more():
        assert (tmp_path / "done0").exists() and (tmp_path / "done2").exists()
        return [(tmp_path, 9)]

    for parallel in (1, 2):
        cfg = replace(smoke_cfg, parallel_runs=parallel)
        assert in_parallel(cfg, _mark, [(tmp_path, n) for n in range(4)], "x", False, then=({0, 2}, more)) == [0, 1, 2, 3, 9]


def _threads(_job):
    import torch

    return torch.get_num_threads()


def test_every_job_in_a_worker_runs_with_the_configured_thread_count(smoke_cfg):
    """A worker left at torch's default would start one thread per core: two workers on two cores then fight
    over them (caption jobs ran three times slower), and results could depend on the thread count."""
    cfg = replace(smoke_cfg, parallel_runs=2, threads=1)
    assert in_parallel(cfg, _threads, [(), ()], "x", False) == [1, 1]
