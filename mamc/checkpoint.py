"""Checkpoints: tensors in safetensors, everything else in JSON, committed atomically.

A checkpoint holds the model (minus a frozen text backbone, which is reloaded from its source), the optimiser,
scheduler, weighting MLP and its optimiser, and the torch RNG states (the CPU's, and the current GPU's on CUDA).
The data position is the step itself (see mamc.data.loaders), so restoring these is enough for a bit-identical
resume.

Commit protocol: the tensors go to a file named after the step (`state_000040.safetensors`, written to a
temporary name, flushed, renamed); then `last.json` — step, tensors file name, its SHA-256, the JSON state and
the byte length of each log at this step — replaces the previous record in one rename; only then are older
tensor files deleted. A kill at any instant leaves the previous checkpoint or the new one, never a mix, and the
logs are cut back to the lengths the record names when the run resumes.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from mamc.manifest import write_json

RECORD = "last.json"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used; the message names the file and what is wrong."""


def _flatten_optimizer(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _restore_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            pid, key = name[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """safetensors file written under a temporary name, flushed to disk, then renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp))
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    tmp.replace(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _commit(directory: Path, record: dict) -> None:
    """The instant a checkpoint becomes the run's checkpoint: one atomic replace of the record."""
    write_json(directory / RECORD, record)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def model_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state to save: everything except a frozen text backbone."""
    skip = "text." if getattr(model, "freeze_text", False) else None
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not (skip and k.startswith(skip))}


def save_weights(path: str | Path, model: nn.Module) -> Path:
    path = Path(path)
    _write_tensors(path, model_tensors(model))
    return path


def load_weights(path: str | Path, model: nn.Module) -> None:
    missing, unexpected = model.load_state_dict(load_file(str(path)), strict=False)
    frozen = "text." if getattr(model, "freeze_text", False) else "\0"
    missing = [k for k in missing if not k.startswith(frozen)]
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit the model (missing {missing[:5]}, unexpected {unexpected[:5]})")


def save_checkpoint(directory: str | Path, step: int, model: nn.Module, opt, sched, weight_net: nn.Module,
                    weight_opt, extra: dict | None = None, logs: dict[str, int] | None = None) -> None:
    """Commit a checkpoint (see the module docstring); `logs` are the byte lengths from `mamc.logs.log_lengths`."""
    directory = Path(directory)
    tensors = {f"model.{k}": v for k, v in model_tensors(model).items()}
    tensors.update({f"weight_net.{k}": v.detach().cpu().contiguous() for k, v in weight_net.state_dict().items()})
    opt_t, opt_meta = _flatten_optimizer("opt", opt)
    wopt_t, wopt_meta = _flatten_optimizer("wopt", weight_opt)
    tensors.update(opt_t)
    tensors.update(wopt_t)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()  # the current GPU's (ranks are seeded alike and draw alike)
    name = f"state_{step:06d}.safetensors"
    _write_tensors(directory / name, tensors)
    _commit(directory, {"step": step, "tensors": name, "sha256": _sha256(directory / name), "opt": opt_meta,
                        "wopt": wopt_meta, "sched": sched.state_dict(), "extra": extra or {}, "logs": logs or {}})
    for old in directory.glob("state_*.safetensors"):
        if old.name != name:
            old.unlink()


def read_record(directory: str | Path) -> dict | None:
    """The committed checkpoint record of a run, or None when it has none."""
    path = Path(directory) / RECORD
    return json.loads(path.read_text()) if path.exists() else None


def checkpoint_tensors(directory: str | Path, record: dict | None = None) -> dict[str, torch.Tensor]:
    """The tensors of the committed checkpoint, checked against the SHA-256 in its record."""
    directory = Path(directory)
    record = record or read_record(directory)
    if record is None:
        raise CheckpointError(f"{directory / RECORD} does not exist: no committed checkpoint")
    path = directory / record["tensors"]
    if not path.exists() or _sha256(path) != record["sha256"]:
        raise CheckpointError(f"{path} is missing or does not match the SHA-256 in {directory / RECORD}")
    return load_file(str(path))


def load_checkpoint(directory: str | Path, model: nn.Module, opt, sched, weight_net: nn.Module, weight_opt) -> dict:
    """Restore everything saved by `save_checkpoint`; returns the record (with the step to resume at)."""
    directory = Path(directory)
    meta = read_record(directory)
    tensors = checkpoint_tensors(directory, meta)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=False)
    weight_net.load_state_dict({k[11:]: v for k, v in tensors.items() if k.startswith("weight_net.")})
    _restore_optimizer("opt", opt, tensors, meta["opt"])
    _restore_optimizer("wopt", weight_opt, tensors, meta["wopt"])
    sched.load_state_dict(meta["sched"])
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return meta
