"""CPU data parallelism without torchrun: ranks joined in a gloo group, and a failure anywhere ends them all."""
import time

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


def _fail_on_rank_one() -> None:
    if dist.rank() == 1:
        raise RuntimeError("rank one gives up")
    tdist.barrier()  # rank 0 waits for a rank that will never come


def test_ranks_share_objects_sums_and_averaged_gradients(tmp_path):
    dist.on_ranks(_share, (str(tmp_path),), world=2)
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got["objects"] == ["rank 0", "rank 1"] and got["sum"].item() == 3.0
        assert all(torch.equal(g, torch.full_like(g, 1.5)) for g in got["grads"])


def test_a_failing_rank_ends_the_group_and_its_error_is_raised_here():
    """The error shown is the cause (rank 1's), not rank 0's lost connection that follows from it."""
    start = time.time()
    with pytest.raises(RuntimeError, match="(?s)rank1 failed first.*rank one gives up"):
        dist.on_ranks(_fail_on_rank_one, (), world=2, timeout_s=300)
    assert time.time() - start < 120  # the waiting rank was stopped, not left to its 300 s timeout


def test_without_a_group_every_helper_is_the_identity():
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.ones(2)
    dist.average_grads([p])
    assert torch.equal(p.grad, torch.ones(2)) and dist.gather_objects(7) == [7]
    assert dist.sum_over_ranks(torch.tensor(2.0)).item() == 2.0
