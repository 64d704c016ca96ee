"""Video decoding, frame sampling, keyframes and the on-disk frame cache.

decord is the fast path; PyAV reads whatever decord cannot (gif, some webm/mkv) and is the fallback on any
decord error. decord's readers are known to grow memory in long-running processes (dmlc/decord#208), so a
reader is opened per video and dropped at once, and the frame cache means training never decodes twice.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import numpy as np
from scipy.signal import find_peaks

from mamc.manifest import atomic_write, update_failures
from mamc.progress import tqdm

try:
    import decord
except ImportError:  # decord has no wheels for some platforms; PyAV covers every container then.
    decord = None

Backend = Literal["auto", "decord", "pyav"]


class VideoError(RuntimeError):
    """A video cannot be read; the message names the file and the reason."""


@dataclass(frozen=True)
class VideoInfo:
    n_frames: int
    fps: float
    width: int
    height: int


def check_file(path: str | Path) -> Path:
    """Reject missing and empty files before a decoder produces an obscure message about them."""
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: missing file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file")
    return path


def _pyav_frames(path: Path, size: tuple[int, int] | None) -> list[np.ndarray]:
    try:
        with av.open(str(path)) as container:
            frames = []
            for frame in container.decode(video=0):
                if size is not None:
                    frame = frame.reformat(width=size[1], height=size[0])
                frames.append(frame.to_ndarray(format="rgb24"))
    except (av.error.FFmpegError, IndexError, ValueError) as err:
        raise VideoError(f"{path}: cannot decode ({err})") from None
    if not frames:
        raise VideoError(f"{path}: no decodable video frame")
    return frames


def probe(path: str | Path, backend: Backend = "auto") -> VideoInfo:
    """Frame count, fps and size."""
    path = check_file(path)
    if backend in ("auto", "decord") and decord is not None:
        try:
            vr = decord.VideoReader(str(path), num_threads=1)
            h, w = vr[0].shape[:2]
            return VideoInfo(len(vr), float(vr.get_avg_fps()), w, h)
        except Exception as err:  # decord raises bare DECORDError/RuntimeError on any bad input
            if backend == "decord":
                raise VideoError(f"{path}: cannot decode with decord ({err})") from None
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or 25)
            n = stream.frames or sum(1 for _ in container.decode(video=0))
            return VideoInfo(int(n), fps, stream.codec_context.width, stream.codec_context.height)
    except (av.error.FFmpegError, IndexError) as err:
        raise VideoError(f"{path}: cannot decode ({err})") from None


def sample_indices(
    n_frames: int,
    n: int,
    mode: Literal["uniform", "random"] = "uniform",
    rng: np.random.Generator | None = None,
    start: int = 0,
    end: int | None = None,
) -> np.ndarray:
    """n frame indices within [start, end): segment centres ("uniform") or one random frame per segment
    ("random", TSN-style sampling for training). Short clips repeat frames rather than fail."""
    end = n_frames if end is None else min(end, n_frames)
    if end <= start:
        raise ValueError(f"empty frame window [{start}, {end}) in a clip of {n_frames} frames")
    edges = np.linspace(start, end, n + 1)
    if mode == "uniform":
        idx = (edges[:-1] + edges[1:]) / 2
    elif mode == "random":
        rng = rng or np.random.default_rng()
        idx = edges[:-1] + rng.random(n) * (edges[1:] - edges[:-1])
    else:
        raise ValueError(f"unknown sampling mode {mode!r}")
    return np.clip(np.floor(idx).astype(np.int64), start, end - 1)


def window(info: VideoInfo, start_s: float | None, end_s: float | None) -> tuple[int, int]:
    """Frame range of a time window in seconds (None means the clip's start or end)."""
    lo = 0 if start_s is None else int(round(start_s * info.fps))
    hi = info.n_frames if end_s is None else int(round(end_s * info.fps))
    return max(0, min(lo, info.n_frames - 1)), max(1, min(hi, info.n_frames))


def read_frames(
    path: str | Path,
    indices: Iterable[int] | None = None,
    size: int | tuple[int, int] | None = None,
    backend: Backend = "auto",
) -> np.ndarray:
    """uint8 frames [n, H, W, 3] at the given indices (all frames when None), optionally resized."""
    path = check_file(path)
    hw = (size, size) if isinstance(size, int) else size
    if backend in ("auto", "decord") and decord is not None:
        try:
            kw = {"width": hw[1], "height": hw[0]} if hw else {}
            vr = decord.VideoReader(str(path), num_threads=1, **kw)
            idx = list(range(len(vr))) if indices is None else [min(int(i), len(vr) - 1) for i in indices]
            out = vr.get_batch(idx).asnumpy()
            del vr
            return out
        except Exception as err:
            if backend == "decord":
                raise VideoError(f"{path}: cannot decode with decord ({err})") from None
    frames = _pyav_frames(path, hw)
    if indices is None:
        return np.stack(frames)
    return np.stack([frames[min(int(i), len(frames) - 1)] for i in indices])


def keyframes(frames: np.ndarray, k: int, min_distance: int = 1) -> np.ndarray:
    """k keyframe indices: peaks of the mean absolute frame difference (shot changes, fast motion), then k
    chosen evenly among them; uniform frames fill in when a clip has too few peaks."""
    n = len(frames)
    if n <= k:
        return np.arange(n)
    diff = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    peaks, _ = find_peaks(diff, distance=max(1, min_distance))
    candidates = np.unique(np.concatenate([[0], peaks + 1]))
    if len(candidates) < k:
        candidates = np.unique(np.concatenate([candidates, sample_indices(n, k)]))
    if len(candidates) < k:
        candidates = np.arange(n)
    pick = np.linspace(0, len(candidates) - 1, k).round().astype(int)
    return candidates[pick]


# ---- frame cache -------------------------------------------------------------------------------------------

def cache_file(cache_dir: str | Path, video_id: str) -> Path:
    """The cache entry of a video; a `video_id` that is not a plain name could point outside the cache."""
    if not video_id or Path(video_id).name != video_id or video_id.startswith("."):
        raise ValueError(f"video_id {video_id!r} is not a plain name: it cannot name a cache file")
    return Path(cache_dir) / f"{video_id}.npy"


def decode_clip(path: Path, row: dict, n_frames: int, size: int) -> np.ndarray:
    """uint8 [n_frames, size, size, 3] evenly over the row's clip (its start/end window, or the whole video): what
    the frame cache and the shards hold. A clip of a single frame (a still image: sampling would only repeat it)
    is refused like an unreadable one."""
    info = probe(path)
    lo, hi = window(info, row.get("start"), row.get("end"))
    if hi - lo < 2:
        raise VideoError(f"{path}: the clip has {hi - lo} frame(s) in [{lo}, {hi}): a still image, not a video")
    return read_frames(path, sample_indices(info.n_frames, n_frames, start=lo, end=hi), size=size)


def build_frame_cache(
    rows: list[dict],
    data_root: str | Path,
    cache_dir: str | Path,
    n_frames: int,
    size: int,
    progress: bool = True,
) -> dict[str, int]:
    """Decode each distinct video once into `cache_dir/<video_id>.npy` (uint8 [n_frames, size, size, 3]).

    Resumable (existing entries are kept). A video that cannot be read, or whose clip holds a single frame (a
    still image: sampling would only repeat it), is recorded in `cache_dir/failures.jsonl` with its id, path
    and reason, and skipped; that file always holds the current state. Returns counts.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    seen: dict[str, dict] = {}
    for row in rows:
        seen.setdefault(row["video_id"], row)
    counts = {"cached": 0, "decoded": 0, "failed": 0}
    attempted, failures = set(), {}
    try:
        for vid, row in tqdm(seen.items(), desc="frames", disable=not progress):
            target = cache_file(cache_dir, vid)
            if target.exists():
                counts["cached"] += 1
                continue
            path = Path(data_root) / row["video"]
            attempted.add(vid)
            try:
                frames = decode_clip(path, row, n_frames, size)
            except (VideoError, ValueError) as err:
                failures[vid] = {"video_id": vid, "video": str(path), "reason": str(err)}
                counts["failed"] += 1
                continue
            atomic_write(target, lambda fh, clip=frames: np.save(fh, clip))
            counts["decoded"] += 1
    finally:
        update_failures(cache_dir / "failures.jsonl", attempted, failures,
                        {v for v in seen if v not in failures and cache_file(cache_dir, v).exists()})
    return counts


def load_cached(cache_dir: str | Path, video_id: str) -> np.ndarray:
    return np.load(cache_file(cache_dir, video_id), allow_pickle=False)
