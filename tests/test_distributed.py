"""CPU data parallelism without torchrun: ranks joined in a gloo group, and a failure anywhere ends them all."""
from pathlib import Path

import pytest
import torch
import torch.distributed as tdist

from mamc import distributed as dist


def _share(out_dir: str) -> None:
    """Each rank writes what the group's helpers give it."""
    grads = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2, 2))]
    for p in grads:
        p.grad = torch.full_like(p, float(dist.rank() + 1))
    dist.average_grads(grads)
    torch.save({"objects": dist.gather_objects(f"rank {dist.rank()}"),
                "sum": dist.sum_over_ranks(torch.tensor([dist.rank() + 1.0])), "grads": [p.grad for p in grads]},
               f"{out_dir}/rank{dist.rank()}.pt")


def _fail_on_rank_one(out_dir: str) -> None:
    if dist.rank() == 1:
        raise RuntimeError("rank one gives up")
    try:
        tdist.barrier()  # rank 0 waits for a rank that will never come
    except RuntimeError as err:  # it may also learn of the lost peer itself; then it says how
        Path(out_dir, "rank0.ended").write_text(str(err))
        raise


@pytest.mark.slow
def test_ranks_share_objects_sums_and_averaged_gradients(tmp_path):
    dist.on_ranks(_share, (str(tmp_path),), world=2)
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got["objects"] == ["rank 0", "rank 1"] and got["sum"].item() == 3.0
        assert all(torch.equal(g, torch.full_like(g, 1.5)) for g in got["grads"])


@pytest.mark.slow
def test_a_failing_rank_ends_the_group_and_its_error_is_raised_here(tmp_path):
    """The error shown is the cause (rank 1's), not rank 0's lost connection that follows from it."""
    with pytest.raises(RuntimeError, match=r"(?s)rank1 failed first.*rank one gives up"):
        dist.on_ranks(_fail_on_rank_one, (str(tmp_path),), world=2, timeout_s=300)
    ended = tmp_path / "rank0.ended"  # absent: rank 0 was stopped; present: it ended on the lost connection
    assert not ended.exists() or "timed out" not in ended.read_text().lower()  # never on its 300 s timeout


def test_without_a_group_every_helper_is_the_identity():
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.ones(2)
    dist.average_grads([p])
    assert torch.equal(p.grad, torch.ones(2)) and dist.gather_objects(7) == [7]
    assert dist.sum_over_ranks(torch.tensor(2.0)).item() == 2.0


def _hand_over(out_dir: str) -> None:
    """Rank 0 decides; the flag crosses on the process's device (NCCL would refuse a CPU tensor on a GPU rank)."""
    torch.save({"flag": dist.from_rank0(dist.rank() == 0)}, f"{out_dir}/rank{dist.rank()}.pt")


@pytest.mark.slow
def test_rank_zeros_decision_reaches_every_rank(tmp_path):
    dist.on_ranks(_hand_over, (str(tmp_path),), world=2)
    assert [torch.load(tmp_path / f"rank{r}.pt")["flag"] for r in (0, 1)] == [True, True]


def _wrong_device() -> None:
    """A collective given a tensor on another device than the process's is refused before it is sent."""
    with pytest.raises(dist.DeviceMismatch, match="tensor on meta in a process that computes on cpu"):
        dist.sum_over_ranks(torch.zeros(1, device="meta"))
    with pytest.raises(dist.DeviceMismatch):
        dist.mean(torch.zeros(2, device="meta"))
    tdist.barrier()


@pytest.mark.slow
def test_a_collective_given_a_tensor_on_another_device_fails():
    dist.on_ranks(_wrong_device, (), world=2)


def test_each_rank_computes_on_its_own_gpu(monkeypatch):
    """Under torchrun, "cuda" means the rank's own GPU (LOCAL_RANK), made current; an explicit index is kept."""
    made_current = []
    monkeypatch.setattr(torch.cuda, "set_device", made_current.append)
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    try:
        assert dist.init_from_env(torch.device("cuda")) == torch.device("cuda", 3) == dist.device()
        assert dist.init_from_env(torch.device("cuda:1")) == torch.device("cuda", 1)
        assert made_current == [torch.device("cuda", 3), torch.device("cuda", 1)]
        assert dist.init_from_env(torch.device("cpu")) == torch.device("cpu") == dist.device()
    finally:
        dist.init_from_env(torch.device("cpu"))


def _free_slurm_port() -> int:
    """A free port that `adopt_slurm` derives from a job id (20000 + id % 20000)."""
    import socket

    for port in range(23456, 40000, 7):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port")


def test_srun_tasks_without_torchrun_are_ranks(tmp_path):
    """Two processes with only the variables `srun --ntasks 2` sets: each takes its rank from Slurm, they meet at
    the launch node on the job's port, and a collective over them sums both."""
    import os
    import subprocess
    import sys

    code = ("import os, torch, torch.distributed as td; from mamc import distributed as d; d.adopt_slurm(); "
            "d.init_from_env(torch.device('cpu')); t = torch.tensor([d.rank() + 1.0]); td.all_reduce(t); "
            "print(d.rank(), td.get_world_size(), int(t.item()), os.environ['LOCAL_RANK']); td.destroy_process_group()")
    job = _free_slurm_port() - 20000
    base = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env={**base, "SLURM_PROCID": str(r), "SLURM_NTASKS": "2", "SLURM_LOCALID": str(r),
                                   "SLURM_JOB_ID": str(job), "SLURM_LAUNCH_NODE_IPADDR": "127.0.0.1"}) for r in (0, 1)]
    outs = sorted(p.communicate(timeout=120)[0].split() for p in procs)
    assert outs == [["0", "2", "3", "0"], ["1", "2", "3", "1"]]


def test_one_slurm_task_or_a_torchrun_rank_is_left_as_it_is(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("SLURM_NTASKS", "1")
    dist.adopt_slurm()
    assert not dist.launched()  # an sbatch script's single task runs as one process, with its worker pool
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "8")
    dist.adopt_slurm()
    assert dist.launch_rank() == (2, 8)  # torchrun under srun: torchrun's ranks win
