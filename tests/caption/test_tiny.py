"""The embedded captioner's training: what each stage learns, what it sees, and that sharing it among processes
changes nothing it learns."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mamc.caption.grid import grid_array
from mamc.caption.tiny import build_captioner, pixel_values, pretrain_vision, train_embedded_captioner
from mamc.manifest import write_json


@pytest.mark.slow
def test_stage_one_teaches_the_vision_tower_the_attributes(smoke_cfg):
    """A few dozen steps of attribute cross-entropy on a handful of grids lower the loss well below chance."""
    colours = {"red": (230, 40, 40), "blue": (50, 90, 240)}
    names = ["red", "blue"] * 4
    grids = [grid_array(np.tile(np.array(colours[c], np.uint8), (4, 8, 8, 1)), 2, 2) for c in names]
    processor, model = build_captioner(["a red ball.", "a blue ball."], grids[0].shape[0], patch=8, width=32)
    losses = pretrain_vision(processor, model, lambda i, _rng: grids[i], {"color": names}, steps=40, batch_size=8,
                             lr=3e-3, progress=False)
    assert losses[-1] < 0.1  # chance is ln 2 = 0.69


def test_the_vision_stage_sees_exactly_what_the_processor_would_give():
    """The vision stage normalises its batch in one pass; the captioner later reads its grids through the
    processor: both must be the same pixels, bit for bit, or the tower is trained on inputs it never sees again."""
    rng = np.random.default_rng(0)
    grids = np.stack([grid_array(rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8), 3, 4) for _ in range(5)])
    processor, _ = build_captioner(["a red ball."], grids.shape[1], patch=16, width=32)
    expected = processor.image_processor(images=list(grids), return_tensors="pt")["pixel_values"]
    assert torch.equal(pixel_values(processor.image_processor, grids), expected)
    with pytest.raises(ValueError, match="not square RGB at the processor's size"):
        pixel_values(processor.image_processor, grids[:, :64])


@pytest.mark.slow
def test_two_processes_train_the_captioner_that_one_process_trains(smoke_cfg, tmp_path):
    """Data parallelism changes who computes what, not what is learnt: each process takes half of every batch,
    every example keeps its own augmentation draws, and the gradient is the whole batch's. Both stages on two
    processes end at one process's weights and loss curves, up to float rounding; rank 0 alone saves."""
    one = replace(smoke_cfg, run_dir=str(tmp_path / "one"), captioner_vision_steps=4, captioner_steps=4,
                  dose_captioner_steps=(2,), grid_cell=8)
    two = replace(one, run_dir=str(tmp_path / "two"), parallel_runs=2)
    a, b = train_embedded_captioner(one, progress=False), train_embedded_captioner(two, progress=False)
    assert (a["processes"], b["processes"]) == (1, 2)
    for curve in ("vision_losses", "losses"):
        np.testing.assert_allclose(a[curve], b[curve], rtol=1e-4)
    for folder in ("captioner", "captioner_step2"):
        wa, wb = (load_file(tmp_path / run / folder / "model.safetensors") for run in ("one", "two"))
        assert wa.keys() == wb.keys()
        for k in wa:
            torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5, msg=k)
    assert not list((tmp_path / "two").glob(".captioner*"))  # no leftover of an atomic save
    assert b["heldout_accuracy"].keys() == {"2", "4"}


@pytest.mark.slow
def test_a_captioner_killed_while_being_measured_is_measured_on_the_next_call(smoke_cfg, tmp_path):
    """The captioner is saved with its training record in one rename; the held-out measurement follows. A kill
    between the two leaves a captioner whose record lacks the accuracy: the next call measures it, and trains
    nothing again."""
    from mamc.caption.jobs import ensure_captioner

    cfg = replace(smoke_cfg, run_dir=str(tmp_path), captioner_vision_steps=2, captioner_steps=2, dose_captioner_steps=(1,),
                  grid_cell=8)
    info = ensure_captioner(cfg, progress=False)
    record = tmp_path / "captioner" / "training.json"
    write_json(record, {k: v for k, v in info.items() if k not in ("heldout_accuracy", "n_heldout")})
    again = ensure_captioner(cfg, progress=False)
    assert again["heldout_accuracy"] == info["heldout_accuracy"] and again["losses"] == info["losses"]
    assert json.loads(record.read_text())["heldout_accuracy"] == info["heldout_accuracy"]
    assert ensure_captioner(cfg, progress=False) is None
