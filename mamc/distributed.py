"""torchrun/DDP helpers, and CPU data parallelism without torchrun (`on_ranks`). Nothing assumes a process group:
with one process every helper is the identity.

Under DDP each rank holds a contiguous slice of the global batch. Features are gathered with the autograd-aware
`torch.distributed.nn.functional.all_gather`, whose backward sums every rank's gradient into the local
features; averaging parameter gradients over ranks then gives exactly the gradient of the global-batch loss.

Every tensor handed to a collective must live on the process's device (`device()`: `cuda:LOCAL_RANK` under NCCL,
the CPU under gloo). NCCL refuses anything else at run time, gloo does not; so every helper here checks it
(`DeviceMismatch`), and a gloo run on a CPU machine catches what would fail on GPUs.
"""
from __future__ import annotations

import os
import tempfile
import traceback
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor

from mamc.run import quiet_libraries

_DEVICE = torch.device("cpu")


class DeviceMismatch(RuntimeError):
    """A collective was given a tensor on another device than the process's (NCCL would refuse it)."""


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def backend() -> str | None:
    """The process group's backend ("nccl", "gloo"), None without one."""
    return dist.get_backend() if is_distributed() else None


def adopt_slurm() -> None:
    """A process that `srun` started as one of several tasks, without torchrun, takes its rank, world size and
    local rank from Slurm (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID) and the rendezvous from the node that ran
    srun (SLURM_LAUNCH_NODE_IPADDR) on a port derived from the job id; variables already set (torchrun's, or
    MASTER_ADDR/MASTER_PORT chosen by the user) win. One task alone is not a launch: it runs as a single process."""
    env = os.environ
    if "RANK" in env or int(env.get("SLURM_NTASKS", "1")) < 2 or "SLURM_PROCID" not in env:
        return
    env.update(RANK=env["SLURM_PROCID"], WORLD_SIZE=env["SLURM_NTASKS"], LOCAL_RANK=env.get("SLURM_LOCALID", "0"))
    env.setdefault("MASTER_ADDR", env.get("SLURM_LAUNCH_NODE_IPADDR", "127.0.0.1"))
    env.setdefault("MASTER_PORT", str(20000 + int(env.get("SLURM_JOB_ID", "0")) % 20000))


def launched() -> bool:
    """Whether a launcher (torchrun, or anything that sets RANK and WORLD_SIZE) started this process as a rank:
    it then joins the process group, even alone (torchrun --nproc_per_node 1 runs the collectives of NCCL)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def launch_rank() -> tuple[int, int]:
    """(rank, world size) given by the launcher (`launched`): the share of a job split by ranks that this process
    takes."""
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])


def device() -> torch.device:
    """The device that this process computes on and hands to collectives (set by `local_device`)."""
    return _DEVICE


def local_device(device: torch.device) -> torch.device:
    """This process's device: on CUDA without an index, `cuda:LOCAL_RANK` (made current, so that NCCL and every
    `.cuda()` use it; without this every rank would compute on GPU 0)."""
    global _DEVICE
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    _DEVICE = device
    return device


def init_from_env(device: torch.device) -> torch.device:
    """Join the process group when launched by torchrun (`launched`): NCCL on CUDA, gloo on CPU. Returns the
    process's device (`local_device`)."""
    device = local_device(device)
    if launched() and not is_distributed():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def _on_device(*tensors: Tensor) -> None:
    for t in tensors:
        if t.device != _DEVICE:
            raise DeviceMismatch(f"a collective was given a tensor on {t.device} in a process that computes on "
                                 f"{_DEVICE}: NCCL refuses it; create or move it to mamc.distributed.device()")


def barrier() -> None:
    """Wait for every rank, e.g. before one rank reads what another has written."""
    if is_distributed() and _DEVICE.type == "cuda":
        dist.barrier(device_ids=[_DEVICE.index])
    elif is_distributed():
        dist.barrier()


def gather(x: Tensor) -> Tensor:
    """Concatenate a tensor over ranks along dim 0, keeping gradients to every rank's slice."""
    if not is_distributed():
        return x
    from torch.distributed.nn.functional import all_gather

    _on_device(x)
    return torch.cat(all_gather(x.contiguous()), 0)


class _SumOverRanks(torch.autograd.Function):
    """x summed over ranks, in the autograd graph. Every rank's sum depends on every rank's x, so the gradient of
    each x is the sum over ranks of the sums' gradients: the same operation, applied through autograd so that it
    can be differentiated again (the meta step's virtual gradient is). torch's own differentiable all-reduce
    (`torch.distributed.nn.functional.all_reduce`) is deprecated for a private module."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        _on_device(x)
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return _SumOverRanks.apply(grad)


def mean(x: Tensor) -> Tensor:
    """Differentiable mean over the global batch (local slices of equal size)."""
    if not is_distributed():
        return x.mean()
    return _SumOverRanks.apply(x.sum()) / (x.numel() * world_size())


def average_differentiable(tensors: list[Tensor]) -> list[Tensor]:
    """All-reduce average that stays in the autograd graph (for the virtual step of the meta update)."""
    if not is_distributed():
        return tensors
    return [_SumOverRanks.apply(t) / world_size() for t in tensors]


def average_grads(params: Iterable[Tensor]) -> None:
    """Average .grad over ranks after backward (DDP's reduction, done by hand so the meta step composes), in one
    all-reduce of the gradients laid end to end: one message per step instead of one per tensor."""
    if not is_distributed():
        return
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    _on_device(flat)
    dist.all_reduce(flat)
    flat /= world_size()
    for g, part in zip(grads, flat.split([g.numel() for g in grads])):
        g.copy_(part.view_as(g))


def sum_over_ranks(x: Tensor) -> Tensor:
    """The sum of a (detached) tensor over ranks, e.g. a loss and the number of items it sums over."""
    if not is_distributed():
        return x
    out = x.detach().clone()
    _on_device(out)
    dist.all_reduce(out)
    return out


def gather_objects(obj: object) -> list:
    """Every rank's `obj` (picklable), in rank order, on every rank."""
    if not is_distributed():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_params(module: torch.nn.Module) -> None:
    """Start every rank from rank 0's weights."""
    if is_distributed():
        for t in list(module.parameters()) + list(module.buffers()):
            _on_device(t)
            dist.broadcast(t.data, 0)


def from_rank0(flag: bool) -> bool:
    """Rank 0's decision (e.g. validation says stop), the same on every rank."""
    if not is_distributed():
        return flag
    t = torch.tensor([int(flag)], device=_DEVICE)
    dist.broadcast(t, 0)
    return bool(t.item())


def on_ranks(fn: Callable[..., None], args: tuple, world: int, poll: Callable[[], None] | None = None,
             timeout_s: float = 600) -> None:
    """`fn(*args)` in `world` spawned processes joined in a gloo process group: data parallelism on a CPU
    machine without torchrun. A rank that fails stops the others (torch.multiprocessing's spawn) and the first
    failure's traceback is raised here (not the errors of the ranks that lost their peer); an interrupt here stops
    every rank, and ranks end if this process dies; a rank that waits `timeout_s` for the others gives up.
    `poll()` runs here about twice a second meanwhile (e.g. to show the ranks' progress)."""
    with tempfile.TemporaryDirectory(prefix="mamc_group_") as folder:
        group = mp.start_processes(_member, args=(world, folder, timeout_s, fn, args), nprocs=world, join=False,
                                   start_method="spawn")
        try:
            while not group.join(timeout=0.5):
                if poll is not None:
                    poll()
        except BaseException as err:  # a failed rank, or an interrupted cell: no rank keeps running
            for process in group.processes:
                process.terminate()
            errors = sorted(Path(folder).glob("rank*.error"), key=lambda p: p.stat().st_mtime_ns)
            if isinstance(err, mp.ProcessRaisedException) and errors:
                raise RuntimeError(f"{errors[0].stem} failed first:\n{errors[0].read_text()}") from err
            raise
        if poll is not None:
            poll()


def _member(rank: int, world: int, folder: str, timeout_s: float, fn: Callable[..., None], args: tuple) -> None:
    quiet_libraries()
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=world,
                            timeout=timedelta(seconds=timeout_s))
    try:
        fn(*args)
    except BaseException:
        (Path(folder) / f"rank{rank}.error").write_text(traceback.format_exc())  # before the peers can notice
        raise
    finally:
        dist.destroy_process_group()
