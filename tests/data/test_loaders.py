"""Batches are functions of (seed, step); the clip memory stays within its budget."""
import numpy as np

from mamc.data.loaders import ClipMemory, StepBatches, global_batch_indices, step_loader
from mamc.data.video import cache_file


def test_batches_are_a_function_of_the_step():
    a = global_batch_indices(100, 10, 12, seed=3)
    assert (a == global_batch_indices(100, 10, 12, seed=3)).all() and len(set(a.tolist())) == 10
    epoch = np.concatenate([global_batch_indices(100, 10, s, 3) for s in range(10)])
    assert sorted(epoch.tolist()) == list(range(100))


def test_clip_memory_evicts_least_recently_used(tmp_path):
    for i in range(4):
        np.save(cache_file(tmp_path, f"v{i}"), np.full((2, 4, 4, 3), i, np.uint8))
    memory = ClipMemory(budget_bytes=2 * 96)
    for i in (0, 1, 0, 2):
        assert memory.get(tmp_path, f"v{i}")[0, 0, 0, 0] == i
    assert [k[1] for k in memory.clips] == ["v0", "v2"] and memory.used == 2 * 96


def test_step_batches_split_across_ranks(smoke_cfg):
    from mamc.data.prepare import ensure_frames, load_rows
    from mamc.run import Run

    rows = load_rows(smoke_cfg, "train")
    ensure_frames(smoke_cfg, rows)
    cache = Run(smoke_cfg).frame_cache
    whole = StepBatches(rows, cache, 4, 8, 8, 0, 0, 0)[5]
    halves = [StepBatches(rows, cache, 4, 8, 4, r, 0, 0)[5] for r in (0, 1)]
    assert whole[0] == halves[0][0] + halves[1][0]
    assert np.array_equal(whole[1].numpy(), np.concatenate([h[1].numpy() for h in halves]))
    assert [idx for idx, _ in step_loader(StepBatches(rows, cache, 4, 8, 8, 0, 0, 0), 4, 6, 0)][1] == whole[0]


def test_a_split_smaller_than_the_batch_gives_a_shorter_batch(smoke_cfg):
    from mamc.data.prepare import ensure_frames, load_rows
    from mamc.run import Run

    rows = load_rows(smoke_cfg, "train")[:6]
    ensure_frames(smoke_cfg, rows)
    part, frames = StepBatches(rows, Run(smoke_cfg).frame_cache, 4, 8, 8, 0, 0, 0)[3]
    assert sorted(r["video_id"] for r in part) == sorted(r["video_id"] for r in rows) and frames.shape[:2] == (6, 4)
