"""Keyframes tiled into one image, the authors' recipe for captioning a video with an image VLM.

The grid (3×4 by default) is not square, and LLaVA's CLIP processor resizes the short side and centre-crops,
which would cut the outer columns away. So the grid is padded to a square on purpose before the processor
sees it; the processor's resize then keeps every frame.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image

from mamc.config import Config
from mamc.data.video import keyframes, probe, read_frames, sample_indices

MAX_CANDIDATE_FRAMES = 64


def tile(frames: np.ndarray, rows: int, cols: int, cell: int | None = None) -> np.ndarray:
    """frames [n, H, W, 3] (n ≤ rows·cols) in row-major order on a rows×cols grid of `cell`-pixel squares (black
    where frames are missing): uint8 [rows·cell, cols·cell, 3]."""
    n = len(frames)
    if n > rows * cols:
        raise ValueError(f"{n} frames do not fit a {rows}x{cols} grid")
    h, w = frames.shape[1:3]
    ch, cw = (cell, cell) if cell else (h, w)
    if (h, w) != (ch, cw):
        frames = np.stack([np.asarray(Image.fromarray(f).resize((cw, ch), Image.BILINEAR)) for f in frames])
    canvas = np.zeros((rows * ch, cols * cw, 3), np.uint8)
    for i, frame in enumerate(frames):
        r, c = divmod(i, cols)
        canvas[r * ch : (r + 1) * ch, c * cw : (c + 1) * cw] = frame
    return canvas


def pad_to_square(img: np.ndarray, fill: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """Centre the image [H, W, 3] on a square canvas so that no centre crop can cut it."""
    h, w = img.shape[:2]
    side = max(h, w)
    out = np.empty((side, side, 3), np.uint8)
    out[:] = fill
    top, left = (side - h) // 2, (side - w) // 2
    out[top : top + h, left : left + w] = img
    return out


def grid_array(frames: np.ndarray, rows: int = 3, cols: int = 4, cell: int | None = None) -> np.ndarray:
    """The captioning input as pixels: rows·cols keyframes (chosen by the caller), tiled and padded to a square.
    Training the embedded captioner reads these arrays directly; captioning sees them as images."""
    return pad_to_square(tile(frames, rows, cols, cell))


def video_grid(frames: np.ndarray, rows: int = 3, cols: int = 4, cell: int | None = None) -> Image.Image:
    """The captioning input as an image, what a VLM's processor takes."""
    return Image.fromarray(grid_array(frames, rows, cols, cell))


def candidate_frames(path: str | Path, cfg: Config) -> np.ndarray:
    """Up to 64 evenly spaced frames, resized to the grid's cell height (cells keep the aspect ratio)."""
    info = probe(path)
    cell_w = max(1, round(cfg.grid_cell * info.width / max(info.height, 1)))
    candidates = sample_indices(info.n_frames, min(info.n_frames, MAX_CANDIDATE_FRAMES))
    return read_frames(path, np.unique(candidates), size=(cfg.grid_cell, cell_w))


def keyframe_grid(frames: np.ndarray, cfg: Config) -> Image.Image:
    """rows·cols keyframes picked evenly among frame-difference peaks, tiled and padded to a square."""
    return video_grid(frames[keyframes(frames, cfg.grid_rows * cfg.grid_cols)], cfg.grid_rows, cfg.grid_cols)


def grid_for_video(path: str | Path, cfg: Config) -> Image.Image:
    """The captioning input of a video file, remembered in this process: the dose-response captions the same
    videos with every captioner snapshot, and the captioner's held-out clips are captioned once per snapshot."""
    return _grid(str(path), cfg.grid_rows, cfg.grid_cols, cfg.grid_cell)


@functools.lru_cache(maxsize=8192)  # at most 8,192 grids (of 128 × 128 pixels by default: 400 MB)
def _grid(path: str, rows: int, cols: int, cell: int) -> Image.Image:
    cfg = Config(grid_rows=rows, grid_cols=cols, grid_cell=cell)
    return keyframe_grid(candidate_frames(path, cfg), cfg)


def keyframes_for_video(path: str | Path, cfg: Config) -> np.ndarray:
    """rows·cols keyframes as frames [T, H, W, 3], for video-native checkpoints (`caption_input="frames"`)."""
    frames = candidate_frames(path, cfg)
    return frames[keyframes(frames, cfg.grid_rows * cfg.grid_cols)]
