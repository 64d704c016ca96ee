"""What the second cell of every notebook calls: the parameters cell holds literals only (papermill injects
them), and everything derived from them is made here."""
from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image as PILImage

from mamc.config import Config, load_config
from mamc.lock import run_lock
from mamc.report.style import use_style
from mamc.run import quiet_libraries, save_config, use_threads


def setup(profile: str, run_dir: str, seed: int = 0, device: str = "auto", overrides: dict | None = None) -> Config:
    """The run's configuration (saved to `config.json` in the run folder; refused when the folder's results were
    made with other settings, or another job holds it), fixed torch threads, and the kit's plotting style."""
    quiet_libraries()
    cfg = load_config(profile, run_dir=run_dir or f"runs/{profile}", seed=seed, device=device, **(overrides or {}))
    with run_lock(cfg.run_path, "notebook"):
        save_config(cfg)
    use_threads(cfg.threads)
    use_style()
    return cfg


HEADLESS = "MAMC_HEADLESS"  # set by `mamc reproduce` for the kernels it starts


def headless() -> bool:
    """Whether this notebook runs without anyone at it (`mamc reproduce`; set MAMC_HEADLESS=1 for papermill)."""
    return os.environ.get(HEADLESS) == "1"


def interactive(draw: Callable[..., Any], **controls: Any) -> None:
    """ipywidgets controls for `draw` (as `ipywidgets.interact` takes them) in a live kernel. Headless, the view
    at the defaults (a widget's value, else `draw`'s default) drawn once, statically, under a line naming the
    controls: the executed notebook then reads the same on GitHub, nbviewer or in HTML, with no widget that needs
    a kernel."""
    import ipywidgets as widgets

    if not headless():
        widgets.interact(draw, **controls)
        return
    defaults = {name: p.default for name, p in inspect.signature(draw).parameters.items()}
    values = {name: getattr(c, "value", defaults.get(name)) for name, c in controls.items()}
    print("In a live kernel, controls here change " + ", ".join(values) + "; shown at "
          + ", ".join(f"{name} = {v!r}" for name, v in values.items()) + ".")
    draw(**values)


def show_figure(paths: list[Path] | Path, pixels_per_inch: int = 140):
    """A saved figure embedded at a width that keeps its labels legible (its print width × `pixels_per_inch`),
    from its 300-dpi PNG."""
    from IPython.display import Image

    png = next(Path(p) for p in (paths if isinstance(paths, list) else [paths]) if Path(p).suffix == ".png")
    with PILImage.open(png) as im:
        width = round(im.size[0] / 300 * pixels_per_inch)
    return Image(filename=str(png), width=width)
