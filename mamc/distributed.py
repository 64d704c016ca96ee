"""torchrun/DDP helpers. Nothing assumes a process group: with one process every helper is the identity.

Under DDP each rank holds a contiguous slice of the global batch. Features are gathered with the autograd-aware
`torch.distributed.nn.functional.all_gather`, whose backward sums every rank's gradient into the local
features; averaging parameter gradients over ranks then gives exactly the gradient of the global-batch loss.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def init_from_env(device: torch.device) -> None:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1): NCCL on CUDA, gloo on CPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not is_distributed():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def gather(x: Tensor) -> Tensor:
    """Concatenate a tensor over ranks along dim 0, keeping gradients to every rank's slice."""
    if not is_distributed():
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()), 0)


def mean(x: Tensor) -> Tensor:
    """Differentiable mean over the global batch (local slices of equal size)."""
    if not is_distributed():
        return x.mean()
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(x.sum()) / (x.numel() * world_size())


def average_differentiable(tensors: list[Tensor]) -> list[Tensor]:
    """All-reduce average that stays in the autograd graph (for the virtual step of the meta update)."""
    if not is_distributed():
        return tensors
    from torch.distributed.nn.functional import all_reduce

    return [all_reduce(t) / world_size() for t in tensors]


def average_grads(params) -> None:
    """Average .grad over ranks after backward (DDP's reduction, done by hand so the meta step composes)."""
    if not is_distributed():
        return
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world_size()


def broadcast_params(module: torch.nn.Module) -> None:
    """Start every rank from rank 0's weights."""
    if is_distributed():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, 0)


def from_rank0(flag: bool) -> bool:
    """Rank 0's decision (e.g. validation says stop), the same on every rank."""
    if not is_distributed():
        return flag
    t = torch.tensor([int(flag)])
    dist.broadcast(t, 0)
    return bool(t.item())
