"""Keyframes tiled into one image, the authors' recipe for captioning a video with an image VLM.

The grid (3×4 by default) is not square, and LLaVA's CLIP processor resizes the short side and centre-crops,
which would cut the outer columns away. So the grid is padded to a square on purpose before the processor
sees it; the processor's resize then keeps every frame.
"""
from __future__ import annotations

import numpy as np
from PIL import Image


def tile(frames: np.ndarray, rows: int, cols: int, cell: int | None = None) -> Image.Image:
    """frames [n, H, W, 3] (n ≤ rows·cols) in row-major order on a rows×cols grid of `cell`-pixel squares."""
    n = len(frames)
    if n > rows * cols:
        raise ValueError(f"{n} frames do not fit a {rows}x{cols} grid")
    h, w = frames.shape[1:3]
    ch, cw = (cell, cell) if cell else (h, w)
    canvas = Image.new("RGB", (cols * cw, rows * ch))
    for i, frame in enumerate(frames):
        img = Image.fromarray(frame)
        if img.size != (cw, ch):
            img = img.resize((cw, ch), Image.BILINEAR)
        canvas.paste(img, ((i % cols) * cw, (i // cols) * ch))
    return canvas


def pad_to_square(img: Image.Image, fill: tuple[int, int, int] = (0, 0, 0)) -> Image.Image:
    """Centre the image on a square canvas so that no centre crop can cut it."""
    side = max(img.size)
    out = Image.new("RGB", (side, side), fill)
    out.paste(img, ((side - img.size[0]) // 2, (side - img.size[1]) // 2))
    return out


def video_grid(frames: np.ndarray, rows: int = 3, cols: int = 4, cell: int | None = None) -> Image.Image:
    """The captioning input: rows·cols keyframes (chosen by the caller), tiled and padded to a square."""
    return pad_to_square(tile(frames, rows, cols, cell))
