"""Decoded clips in WebDataset tar shards: the data path past one machine (the frame cache stays the small one).

A split's distinct clips, in the manifest's order of first appearance, are numbered; clip n is sample key
`f"{n:09d}"` (video2dataset's convention: keys without dots, sidecars join on them) in shard n // shard_size, the
last shard taking the remainder (between shard_size and 2·shard_size − 1 clips: no shard is tiny, which would
starve a stream dealt it alone).
Each sample holds `<key>.frames.npy` (uint8 [clip_frames, frame_size, frame_size, 3], exactly what the frame
cache would hold) and `<key>.json` (id, captions, split, topic, source, video, window). Beside each shard, its
record `<shard>.json` says how many samples it holds and which clips failed to decode, and why; the record is
written last, so it marks the shard finished. `sizes.json` (shard name → samples) is written once every shard
of the split is finished.

The bytes of a shard are a function of the manifest, the settings and the videos (fixed tar header fields,
`np.save`, sorted json), so a shard made again, on another machine or after a kill, is the same file. Work is
split by shard: a process takes a range of shards (`--range`, one Slurm array task), the ranks of a torchrun or
srun launch take every world-th shard of it, and each shard is written atomically and skipped once finished.
Reading the manifest needs 8 bytes per row and one pass per 100 shards of a range, whatever its size.
"""
from __future__ import annotations

import io
import json
from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import webdataset as wds

from mamc.data.video import VideoError, decode_clip
from mamc.manifest import atomic_write, id_hash, iter_jsonl, write_json
from mamc.progress import tqdm

SHARDS_PER_PASS = 100


def shard_name(index: int) -> str:
    return f"{index:05d}.tar"


def sample_key(ordinal: int) -> str:
    return f"{ordinal:09d}"


def record_path(folder: Path, index: int) -> Path:
    return folder / f"{index:05d}.json"


def clip_order(manifest: str | Path, split: str) -> np.ndarray:
    """The id hashes of the split's distinct clips, in the manifest's order of first appearance (clip n is at n)."""
    hashes = array("Q")
    for _, row in iter_jsonl(manifest):
        if row.get("split") == split:
            hashes.append(id_hash(row["video_id"]))
    unique, first = np.unique(np.frombuffer(hashes, np.uint64), return_index=True)
    return unique[np.argsort(first)]


def shard_count(n_clips: int, shard_size: int) -> int:
    return max(1, n_clips // shard_size)


def shard_of(n: int, n_clips: int, shard_size: int) -> int:
    return min(n // shard_size, shard_count(n_clips, shard_size) - 1)


def clips_of(manifest: str | Path, split: str, order: np.ndarray, shards: list[int], shard_size: int) -> dict[int, dict]:
    """The samples' json of the clips in `shards` (ordinal → record), with every caption the manifest gives them."""
    last = shard_count(len(order), shard_size) - 1
    wanted = {int(order[n]): n for s in shards
              for n in range(s * shard_size, len(order) if s == last else (s + 1) * shard_size)}
    clips: dict[int, dict] = {}
    for _, row in iter_jsonl(manifest):
        if row.get("split") != split:
            continue
        n = wanted.get(id_hash(row["video_id"]))
        if n is None:
            continue
        if n not in clips:
            clips[n] = {"id": row["video_id"], "video": row["video"], "split": split, "topic": row.get("topic"),
                        "source": row.get("source", "original"), "window": [row.get("start"), row.get("end")],
                        "captions": []}
        clips[n]["captions"].append(row["caption"])
    return clips


def _npy(frames: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, frames, allow_pickle=False)
    return buf.getvalue()


def write_tar(folder: Path, index: int, samples: Iterable[dict], clips: int, failures: list[dict]) -> dict:
    """Write shard `index` atomically from its samples (a `__key__` and bytes members each, keys ascending), then
    its record with `failures` (filled while the samples are made); returns the record. A temporary file of this
    shard left by a killed process is removed first (no other process writes this shard)."""
    for stale in folder.glob(f".{shard_name(index)}.*.tmp"):
        stale.unlink(missing_ok=True)
    count = 0

    def write(fh) -> None:
        nonlocal count
        with wds.TarWriter(fh, user="mamc", group="mamc", mtime=0, encoder=False) as tar:
            for sample in samples:
                tar.write(sample)
                count += 1

    atomic_write(folder / shard_name(index), write)
    record = {"shard": shard_name(index), "samples": count, "clips": clips, "failures": failures}
    write_json(record_path(folder, index), record)
    return record


def write_shard(folder: Path, index: int, clips: dict[int, dict], data_root: Path, n_frames: int, size: int) -> dict:
    """Decode the clips of one shard into it (`write_tar`); returns its record."""
    failures: list[dict] = []

    def samples() -> Iterator[dict]:
        for n in sorted(clips):
            clip = clips[n]
            path = data_root / clip["video"]
            try:
                frames = decode_clip(path, {"start": clip["window"][0], "end": clip["window"][1]}, n_frames, size)
            except (VideoError, ValueError) as err:
                failures.append({"video_id": clip["id"], "video": str(path), "reason": str(err)})
                continue
            yield {"__key__": sample_key(n), "frames.npy": _npy(frames),
                   "json": json.dumps(clip, sort_keys=True, ensure_ascii=False).encode("utf-8")}

    return write_tar(folder, index, samples(), len(clips), failures)


def shard_clips(folder: Path, index: int) -> list[dict]:
    """The json members of a shard (what each clip is), read without its frames: a caption job's input."""
    url = str(folder / shard_name(index))
    pipeline = wds.DataPipeline(wds.SimpleShardList([url]), wds.tarfile_to_samples(select_files=lambda f: f.endswith(".json")))
    return [dict(json.loads(sample["json"]), key=sample["__key__"]) for sample in pipeline]


def finished(folder: Path, index: int) -> bool:
    return record_path(folder, index).exists() and (folder / shard_name(index)).exists()


def read_sizes(folder: str | Path) -> dict[str, int]:
    path = Path(folder) / "sizes.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: `mamc shard` has not finished every shard of {Path(folder).name!r}")
    return json.loads(path.read_text())


def write_sizes(folder: Path, n_shards: int) -> dict[str, int] | None:
    """`sizes.json` once every shard of the split is finished; None while some are not."""
    if not all(finished(folder, i) for i in range(n_shards)):
        return None
    sizes = {shard_name(i): json.loads(record_path(folder, i).read_text())["samples"] for i in range(n_shards)}
    write_json(folder / "sizes.json", sizes)
    return sizes


def make_shards(manifest: str | Path, split: str, folder: str | Path, data_root: str | Path, n_frames: int, size: int,
                shard_size: int, shards: slice = slice(None), progress: bool = True) -> dict:
    """Write the split's shards that are not finished among `shards` (a slice of the split's shard indices,
    e.g. a range and every world-th of it); returns counts."""
    folder, data_root = Path(folder), Path(data_root)
    folder.mkdir(parents=True, exist_ok=True)
    order = clip_order(manifest, split)
    n_shards = shard_count(len(order), shard_size)
    todo = [i for i in range(n_shards)[shards] if not finished(folder, i)]
    counts = {"split": split, "clips": len(order), "shards": n_shards, "written": 0, "samples": 0, "failed": 0}
    with tqdm(total=len(todo), desc=f"shards {split}", disable=not progress, unit="shard") as bar:
        for lo in range(0, len(todo), SHARDS_PER_PASS):
            part = todo[lo : lo + SHARDS_PER_PASS]
            clips = clips_of(manifest, split, order, part, shard_size)
            for index in part:
                mine = {n: c for n, c in clips.items() if shard_of(n, len(order), shard_size) == index}
                record = write_shard(folder, index, mine, data_root, n_frames, size)
                counts["written"] += 1
                counts["samples"] += record["samples"]
                counts["failed"] += len(record["failures"])
                bar.update()
    counts["complete"] = write_sizes(folder, n_shards) is not None
    return counts
