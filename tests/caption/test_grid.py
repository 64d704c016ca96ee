"""Keyframe grids: row-major tiling, padded to a square so that a centre crop keeps every frame."""
import numpy as np
from transformers import CLIPImageProcessor

from mamc.caption.grid import grid_array, pad_to_square, tile, video_grid


def frames(n, size=8):
    return np.stack([np.full((size, size, 3), 10 * (i + 1), np.uint8) for i in range(n)])


def test_tiles_row_major():
    img = tile(frames(12), 3, 4)
    assert img.shape == (24, 32, 3)
    assert img[0, 8 * 3, 0] == 40 and img[8, 0, 0] == 50 and img[23, 31, 0] == 120


def test_padding_keeps_outer_columns_through_a_centre_crop():
    grid = video_grid(frames(12), 3, 4)
    assert grid.size[0] == grid.size[1] and np.array_equal(np.asarray(grid), grid_array(frames(12), 3, 4))
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                   do_normalize=False, do_rescale=True)
    pixels = processor(images=[grid], return_tensors="np")["pixel_values"][0]
    right_column = pixels[:, 8:24, -2].mean()
    cropped = processor(images=[tile(frames(12), 3, 4)], return_tensors="np")["pixel_values"][0]
    assert right_column > 0.3, "the last frame column must survive"
    assert cropped[:, :, -2].mean() < right_column + 1e-6


def test_pad_to_square_centres():
    out = pad_to_square(np.full((2, 4, 3), 255, np.uint8))
    assert out.shape == (4, 4, 3) and out[0].max() == 0 and out[1:3].min() == 255


def test_frames_of_another_size_are_resized_to_the_cell():
    grid = tile(np.full((2, 4, 6, 3), 200, np.uint8), 1, 2, cell=8)
    assert grid.shape == (8, 16, 3) and grid.min() == 200
