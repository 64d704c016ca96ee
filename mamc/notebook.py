"""What the second cell of every notebook calls: the parameters cell holds literals only (papermill injects
them), and everything derived from them is made here."""
from __future__ import annotations

import logging
import os

from mamc.config import Config, load_config
from mamc.lock import run_lock
from mamc.report.plots import use_style
from mamc.run import save_config, use_threads


def setup(profile: str, run_dir: str, seed: int = 0, device: str = "auto", overrides: dict | None = None) -> Config:
    """The run's configuration (saved to `config.json` in the run folder; refused when the folder's results were
    made with other settings, or another job holds it), fixed torch threads, and the kit's plotting style."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    cfg = load_config(profile, run_dir=run_dir or f"runs/{profile}", seed=seed, device=device, **(overrides or {}))
    with run_lock(cfg.run_path, "notebook"):
        save_config(cfg)
    use_threads(cfg.threads)
    use_style()
    return cfg
