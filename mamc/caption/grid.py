"""Keyframes tiled into one image, the authors' recipe for captioning a video with an image VLM.

The grid (3×4 by default) is not square, and LLaVA's CLIP processor resizes the short side and centre-crops,
which would cut the outer columns away. So the grid is padded to a square on purpose before the processor
sees it; the processor's resize then keeps every frame.
"""
from __future__ import annotations

import numpy as np
from PIL import Image


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
