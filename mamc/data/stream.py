"""Training batches streamed from WebDataset shards, split across ranks and DataLoader workers.

Every rank reads `streams` slots (`Config.shard_streams`), so the job has world × streams *slots*, whatever
the number of DataLoader workers that read them (each worker owns streams / workers of them). In each epoch
the shard list is permuted by (seed, epoch) and dealt to the slots round-robin; a job with more slots than
shards deals the list again in a new permutation until every slot has one (resampling, never an empty slot).
Each slot reads its shards with webdataset, shuffles samples in a seeded buffer and cuts batches of the rank's
share of the global batch. All slots yield the same number of batches per epoch — as many as the fewest
samples any slot can be dealt allow (`least_per_slot`, from `sizes.json`) — so every rank takes the same number
of steps and none waits for another at an epoch's end (the DDP hang of uneven shards); the rest of a larger
slot is left for that epoch.

Batch k of the rank's stream r in epoch e is step e·steps_per_epoch + k·streams + r, and every draw
(permutation, shuffle buffer, caption, frame offsets) is seeded by (seed, stream, epoch, slot or step): the
batches are a function of (seed, epoch, step) — and of the world size and `shard_streams`, which a resumed run
keeps — never of the workers, so a run resumed at any step, with any number of workers, replays exactly the
batches an uninterrupted run would have seen (the batches before it in its epoch are read again, not decoded).

A clip is one sample per epoch, with one of its captions drawn per epoch: the manifest's, and the VLM's when a
caption sidecar (shards of the same names in another folder, keys joined, as video2dataset writes them) is given.
"""
from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import webdataset as wds

from mamc.data.loaders import batch_loader, sample_frames
from mamc.data.shards import read_sizes


def slot_shards(names: list[str], slots: int, seed: int, epoch: int) -> list[list[str]]:
    """The shards each slot reads in `epoch` (see the module docstring)."""
    rounds = -(-slots // len(names))
    dealt = np.concatenate([np.random.default_rng([seed, epoch, r]).permutation(len(names)) for r in range(rounds)])
    return [[names[i] for i in dealt[s::slots]] for s in range(slots)]


def least_per_slot(sizes: list[int], slots: int) -> int:
    """The fewest samples any slot can be dealt in any epoch, from the shard sizes in ascending order: a slot
    gets at least ⌊rounds·n / slots⌋ shards, distinct ones when the list is dealt once."""
    rounds = -(-slots // len(sizes))
    least = rounds * len(sizes) // slots
    return sum(sizes[:least]) if rounds == 1 else least * sizes[0]


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def npy_view(data: bytes) -> np.ndarray:
    """The array of an .npy member, read in place (`np.load` would copy the frames once more)."""
    buf = io.BytesIO(data)
    read_header = {(1, 0): np.lib.format.read_array_header_1_0}.get(np.lib.format.read_magic(buf),
                                                                    np.lib.format.read_array_header_2_0)
    shape, fortran, dtype = read_header(buf)
    return np.frombuffer(data, dtype, offset=buf.tell()).reshape(shape, order="F" if fortran else "C")


def _samples(url: str, sidecar_url: str | None) -> Iterator[dict]:
    """Samples of one shard (raw bytes), each with its sidecar caption when there is one (keys are ascending in
    both, and a sidecar may lack the keys whose caption failed)."""
    videos = wds.DataPipeline(wds.SimpleShardList([url]), wds.tarfile_to_samples())
    captions = iter(wds.DataPipeline(wds.SimpleShardList([sidecar_url]), wds.tarfile_to_samples())) if sidecar_url else None
    pending = next(captions, None) if captions else None
    for sample in videos:
        while pending is not None and pending["__key__"] < sample["__key__"]:
            pending = next(captions, None)
        match = pending if pending is not None and pending["__key__"] == sample["__key__"] else None
        yield sample | {"sidecar": match}


class ShardStream(torch.utils.data.IterableDataset):
    """This rank's batches for steps [start, stop): (rows, uint8 frames [b, T, H, W, 3]), rows being one dict
    per sample with its `video_id`, drawn `caption`, `topic`, `source` and `split`."""

    def __init__(self, folder: str | Path, local: int, rank: int, world: int, streams: int, workers: int,
                 n_frames: int, seed: int, stream: int, start: int, stop: int, sidecar: str | Path | None = None,
                 buffer: int = 1000):
        if streams % max(1, workers):
            raise ValueError(f"shard_streams={streams} must divide by num_workers={workers}: each worker reads whole streams")
        self.folder, self.sidecar = Path(folder), Path(sidecar) if sidecar else None
        self.sizes = read_sizes(folder)
        self.names = sorted(self.sizes)
        self.local, self.rank, self.world, self.streams, self.workers = local, rank, world, streams, max(1, workers)
        self.n_frames, self.seed, self.stream, self.start, self.stop, self.buffer = n_frames, seed, stream, start, stop, buffer
        slots = world * streams
        per_slot = least_per_slot(sorted(self.sizes.values()), slots)
        self.batches_per_slot = per_slot // local
        if self.batches_per_slot == 0:
            raise ValueError(f"{self.folder}: {sum(self.sizes.values())} samples in {len(self.names)} shard(s) leave a slot "
                             f"{per_slot}, less than a batch of {local}, for each of {slots} streams ({world} rank(s) × "
                             f"{streams} shard_streams): use fewer streams or smaller shards")

    @property
    def steps_per_epoch(self) -> int:
        return self.batches_per_slot * self.streams

    def _slot_batches(self, epoch: int, role: int) -> Iterator[list[dict]]:
        """The batches of the rank's stream `role` in `epoch`, raw: exactly `batches_per_slot` of them."""
        slot = self.rank * self.streams + role
        urls = [str(self.folder / n) for n in slot_shards(self.names, self.world * self.streams, self.seed, epoch)[slot]]
        rng = random.Random(_seed(self.seed, self.stream, epoch, slot))
        samples = (s for url in urls for s in _samples(url, str(self.sidecar / Path(url).name) if self.sidecar else None))
        shuffled = wds.shuffle(self.buffer, min(100, self.buffer), rng=rng)(samples)
        batch, made = [], 0
        for sample in shuffled:
            batch.append(sample)
            if len(batch) == self.local:
                yield batch
                batch, made = [], made + 1
                if made == self.batches_per_slot:
                    return

    def _batch(self, raw: list[dict], epoch: int, step: int) -> tuple[list[dict], torch.Tensor]:
        draws = np.random.default_rng([self.seed, self.stream, epoch, step]).random(len(raw))  # one caption per clip
        rows, clips = [], []
        for sample, u in zip(raw, draws):
            meta = json.loads(sample["json"])
            captions = meta["captions"] + ([json.loads(sample["sidecar"]["json"])["caption"]] if sample["sidecar"] else [])
            pick = int(u * len(captions))
            rows.append({"video_id": meta["id"], "caption": captions[pick], "topic": meta.get("topic"),
                         "split": meta["split"], "source": "vlm" if pick == len(meta["captions"]) else meta["source"]})
            clips.append(npy_view(sample["frames.npy"]))
        keys = list(range(self.rank * self.local, self.rank * self.local + len(rows)))
        return rows, sample_frames(clips, self.n_frames, "random", (self.seed, self.stream, step), keys)

    def __iter__(self) -> Iterator[tuple[list[dict], torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        # The DataLoader takes batches from its workers in turn, worker 0 first: worker i yields steps start+i,
        # start+i+workers, … which are exactly the steps of the streams r with (r - start) ≡ i (mod workers).
        owned = {r for r in range(self.streams) if (r - self.start) % self.workers == worker}
        epoch = self.start // self.steps_per_epoch
        while epoch * self.steps_per_epoch < self.stop:
            slots = {r: self._slot_batches(epoch, r) for r in owned}
            for j in range(self.steps_per_epoch):
                step = epoch * self.steps_per_epoch + j
                if step >= self.stop:
                    return
                if j % self.streams in owned:
                    raw = next(slots[j % self.streams])
                    if step >= self.start:
                        yield self._batch(raw, epoch, step)
            epoch += 1


def stream_loader(stream: ShardStream, workers: int) -> torch.utils.data.DataLoader:
    """The DataLoader over a stream: workers' batches in turn, which is the step order (see `ShardStream`)."""
    return batch_loader(stream, workers)


def read_split(folder: str | Path) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Every sample of a small split's shards (meta, val) in memory: one row per caption, as the manifest has
    them, and the clips by video id, for the step-indexed batches and the evaluation that the cache path uses."""
    folder = Path(folder)
    rows, clips = [], {}
    for name in sorted(read_sizes(folder)):
        for sample in _samples(str(folder / name), None):
            meta = json.loads(sample["json"])
            rows += [{"video_id": meta["id"], "video": meta["video"], "caption": c, "split": meta["split"],
                      "topic": meta.get("topic"), "source": meta["source"]} for c in meta["captions"]]
            clips[meta["id"]] = npy_view(sample["frames.npy"])
    return rows, clips
