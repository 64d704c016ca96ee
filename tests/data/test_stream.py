"""Batches streamed from shards: shards dealt to ranks × streams completely and disjointly (or resampled when
there are too few), the same number of batches on every rank, and a stream that is a function of (seed, epoch,
step) — whatever the DataLoader workers, and from any step a run resumes at."""
import random

import pytest
import torch
import torch.distributed as dist

from mamc.data.shards import make_shards, read_sizes
from mamc.data.stream import ShardStream, least_per_slot, slot_shards, stream_loader
from mamc.distributed import on_ranks
from mamc.run import Run


@pytest.fixture(scope="module")
def shards(smoke_cfg, tmp_path_factory):
    """The smoke corpus's 192 training clips in 6 shards (30 × 5 and 42): uneven over 4 slots."""
    folder = tmp_path_factory.mktemp("shards")
    make_shards(Run(smoke_cfg).path("manifest"), "train", folder, smoke_cfg.data_dir, smoke_cfg.clip_frames,
                smoke_cfg.frame_size, 30, progress=False)
    return folder


def test_shards_are_dealt_completely_and_disjointly_or_resampled_when_too_few():
    names = [f"{i:05d}.tar" for i in range(7)]
    for epoch in range(3):
        dealt = slot_shards(names, 4, seed=0, epoch=epoch)
        assert sorted(n for slot in dealt for n in slot) == names and [len(s) for s in dealt] == [2, 2, 2, 1]
    assert slot_shards(names, 4, 0, 0) != slot_shards(names, 4, 0, 1)  # each epoch its own permutation
    resampled = slot_shards(names[:3], 8, seed=0, epoch=0)
    assert [len(s) for s in resampled] == [2] + [1] * 7 and set(n for s in resampled for n in s) == set(names[:3])


def test_no_slot_is_ever_dealt_fewer_samples_than_the_batches_assume():
    rng = random.Random(0)
    for _ in range(300):
        sizes = sorted(rng.randrange(1, 60) for _ in range(rng.randrange(1, 9)))
        slots = rng.randrange(1, 12)
        names = [f"{i}" for i in range(len(sizes))]
        for epoch in range(4):
            dealt = slot_shards(names, slots, 0, epoch)
            assert min(sum(sizes[int(n)] for n in s) for s in dealt) >= least_per_slot(sizes, slots)


def batches(folder, rank, world, workers, start, stop, streams=2, local=8):
    stream = ShardStream(folder, local, rank, world, streams, workers, 4, 0, 0, start, stop)
    return stream.steps_per_epoch, [([r["video_id"] for r in rows], frames) for rows, frames in stream_loader(stream, workers)]


def same(a, b):
    return len(a) == len(b) and all(x[0] == y[0] and torch.equal(x[1], y[1]) for x, y in zip(a, b))


def test_the_stream_is_the_same_with_any_number_of_workers_and_from_any_step(shards):
    per_epoch, whole = batches(shards, 0, 2, 0, 0, 20)
    assert per_epoch == 6 and len(whole) == 20  # a slot may be dealt one shard of 30 alone: 3 batches of 8 per stream
    assert same(batches(shards, 0, 2, 2, 0, 20)[1], whole)
    for start in (1, 3, 6, 13):
        assert same(batches(shards, 0, 2, 1, start, 20)[1], whole[start:])
        assert same(batches(shards, 0, 2, 2, start, 20)[1], whole[start:])


def test_an_epoch_reads_each_clip_at_most_once_across_ranks_and_every_rank_takes_as_many_batches(shards):
    per_epoch, rank0 = batches(shards, 0, 2, 2, 0, 100)
    _, rank1 = batches(shards, 1, 2, 2, 0, 100)
    assert len(rank0) == len(rank1) == 100
    for e in range(100 // per_epoch):
        seen = [v for ids, _ in rank0[e * per_epoch : (e + 1) * per_epoch] + rank1[e * per_epoch : (e + 1) * per_epoch]
                for v in ids]
        assert len(seen) == len(set(seen)) == 2 * per_epoch * 8
    assert rank0[0][0] != rank0[per_epoch][0]  # a new epoch, a new order


def test_a_stream_too_small_for_its_slots_says_so(shards):
    with pytest.raises(ValueError, match=r"less than a batch of 64, for each of 4 streams \(2 rank\(s\) × 2 shard_streams\)"):
        ShardStream(shards, 64, 0, 2, 2, 0, 4, 0, 0, 0, 10)
    with pytest.raises(ValueError, match="shard_streams=3 must divide by num_workers=2"):
        ShardStream(shards, 8, 0, 2, 3, 2, 4, 0, 0, 0, 10)
    with pytest.raises(FileNotFoundError, match="sizes.json does not exist"):
        read_sizes(shards.parent)


def _rank_loop(folder: str, steps: int, out: str) -> None:
    """What a DDP rank does with its loader: one collective per step, so a rank with fewer batches would hang."""
    rank = dist.get_rank()
    seen = []
    for rows, _frames in stream_loader(ShardStream(folder, 8, rank, 2, 2, 2, 4, 0, 0, 0, steps), 2):
        total = torch.tensor([len(rows)])
        dist.all_reduce(total)
        seen.append(int(total))
    torch.save(seen, f"{out}/rank{rank}.pt")


@pytest.mark.slow
def test_two_gloo_ranks_with_two_workers_each_step_together_to_the_end(shards, tmp_path):
    on_ranks(_rank_loop, (str(shards), 30, str(tmp_path)), world=2, timeout_s=120)
    counts = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert counts[0] == counts[1] == [16] * 30
