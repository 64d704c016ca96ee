"""Batches for training and evaluation, read from the frame cache.

The order of training samples and the frames sampled from each clip are pure functions of (seed, step), so a
resumed run sees exactly the batches an uninterrupted run would have seen: the data position is the step.
"""
from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from mamc.data.video import cache_file, load_cached


def usable_rows(rows: list[dict], cache_dir: str | Path) -> list[dict]:
    """Rows whose video is in the frame cache; the others were recorded in the cache's failures file."""
    return [r for r in rows if cache_file(cache_dir, r["video_id"]).exists()]


@functools.lru_cache(maxsize=8)
def _epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """One epoch's seeded permutation, drawn once per epoch instead of at every step (read-only, as it is shared)."""
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    perm.setflags(write=False)
    return perm


def global_batch_indices(n: int, batch_size: int, step: int, seed: int) -> np.ndarray:
    """Indices of the global batch at `step`: epochs are seeded permutations, batches consecutive slices."""
    per_epoch = max(n // batch_size, 1)
    epoch, pos = divmod(step, per_epoch)
    return _epoch_order(n, seed, epoch)[pos * batch_size : (pos + 1) * batch_size]


class ClipMemory:
    """Clips of the frame cache kept in memory, least recently used out first past a byte budget, so that
    later epochs, validation and the next run of an ablation in the same process skip the file reads."""

    def __init__(self, budget_bytes: int = 2 << 30):
        self.budget, self.used = budget_bytes, 0
        self.clips: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    def get(self, cache_dir: str | Path, video_id: str) -> np.ndarray:
        key = (str(cache_dir), video_id)
        if key in self.clips:
            self.clips.move_to_end(key)
            return self.clips[key]
        clip = load_cached(cache_dir, video_id)
        self.clips[key] = clip
        self.used += clip.nbytes
        while self.used > self.budget and len(self.clips) > 1:
            self.used -= self.clips.popitem(last=False)[1].nbytes
        return clip


CLIP_MEMORY = ClipMemory()


def sample_frames(clips: list[np.ndarray], n_frames: int, mode: str = "uniform", seed: tuple[int, ...] = (0,),
                  keys: list[int] | None = None) -> torch.Tensor:
    """uint8 [B, T, H, W, 3]: `n_frames` from each clip, segment centres ("uniform") or one random frame per
    segment ("random", training). The random offsets of the batch are drawn at once from `seed` for positions
    0…max(keys) and each clip takes those of its key, its global batch position, so the frames do not depend on
    how a batch is split across ranks."""
    keys = np.arange(len(clips)) if keys is None else np.asarray(keys)
    if mode == "uniform":
        offsets = np.full((len(clips), n_frames), 0.5)
    elif mode == "random":
        offsets = np.random.default_rng(list(seed)).random((int(keys.max(initial=0)) + 1, n_frames))[keys]
    else:
        raise ValueError(f"unknown sampling mode {mode!r}")
    lengths = np.array([len(c) for c in clips])[:, None]
    idx = np.minimum(((np.arange(n_frames) + offsets) * lengths / n_frames).astype(np.int64), lengths - 1)
    return torch.from_numpy(np.stack([clip[i] for clip, i in zip(clips, idx)]))


def load_frames(rows: list[dict], clips: str | Path | Mapping[str, np.ndarray], n_frames: int, mode: str = "uniform",
                seed: tuple[int, ...] = (0,), keys: list[int] | None = None) -> torch.Tensor:
    """`sample_frames` of the rows' clips, from the frame cache (a folder) or from clips held in memory (a
    small split read from shards)."""
    if isinstance(clips, Mapping):
        return sample_frames([clips[row["video_id"]] for row in rows], n_frames, mode, seed, keys)
    return sample_frames([CLIP_MEMORY.get(clips, row["video_id"]) for row in rows], n_frames, mode, seed, keys)


class StepBatches(torch.utils.data.Dataset):
    """Item `step` is this rank's slice of the global batch at that step: (rows, uint8 frames).

    Because a batch is a function of the step, a `DataLoader` with worker processes can prefetch it and a
    resumed run simply starts at its step.
    """

    def __init__(self, rows: list[dict], clips: str | Path | Mapping[str, np.ndarray], n_frames: int, batch_size: int,
                 local: int, rank: int, seed: int, stream: int):
        self.rows, self.clips, self.n_frames = rows, clips, n_frames
        self.batch_size, self.seed, self.stream = batch_size, seed, stream
        self.keys = list(range(rank * local, (rank + 1) * local))

    def __len__(self) -> int:
        return 1 << 62

    def __getitem__(self, step: int) -> tuple[list[dict], torch.Tensor]:
        idx = global_batch_indices(len(self.rows), self.batch_size, step, self.seed * 1000 + self.stream)
        # A split smaller than the batch (a small meta set) gives a shorter batch: keys of the positions it has.
        rows = [self.rows[i] for i in idx[self.keys[0] : self.keys[-1] + 1]]
        return rows, load_frames(rows, self.clips, self.n_frames, "random", (self.seed, self.stream, step),
                                 self.keys[: len(rows)])


def batch_loader(data: torch.utils.data.Dataset, num_workers: int, sampler=None) -> torch.utils.data.DataLoader:
    """A DataLoader over whole batches (a map-style dataset indexed by `sampler`, or a stream), prefetched by
    `num_workers` processes (0: in this process)."""
    # A generator of its own: a loader draws its workers' base seed from it, which would otherwise advance the
    # global torch RNG once per (re)start and make a resumed run's RNG state differ from an uninterrupted one.
    return torch.utils.data.DataLoader(data, batch_size=None, sampler=sampler, num_workers=num_workers,
                                       persistent_workers=False, pin_memory=torch.cuda.is_available(),
                                       generator=torch.Generator(), collate_fn=whole_batch)


def step_loader(batches: StepBatches, start: int, stop: int, num_workers: int) -> torch.utils.data.DataLoader:
    """Batches for steps [start, stop)."""
    return batch_loader(batches, num_workers, range(start, stop))


def whole_batch(item: tuple[list[dict], torch.Tensor]) -> tuple[list[dict], torch.Tensor]:
    """A batch is made whole by `StepBatches`; the default conversion would walk its rows item by item."""
    return item
