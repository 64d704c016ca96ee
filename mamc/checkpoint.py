"""Checkpoints: tensors in safetensors, everything else in JSON; both written atomically.

A checkpoint holds the model (minus a frozen text backbone, which is reloaded from its source), the optimiser,
scheduler, weighting MLP and its optimiser, and the torch RNG state. The data position is the step itself
(see mamc.data.loaders), so restoring these is enough for a bit-identical resume.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from mamc.manifest import write_json


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


def model_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state to save: everything except a frozen text backbone."""
    skip = "text." if getattr(model, "freeze_text", False) else None
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not (skip and k.startswith(skip))}


def save_weights(path: str | Path, model: nn.Module) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(model_tensors(model), str(tmp))
    tmp.replace(path)
    return path


def load_weights(path: str | Path, model: nn.Module) -> None:
    missing, unexpected = model.load_state_dict(load_file(str(path)), strict=False)
    frozen = "text." if getattr(model, "freeze_text", False) else "\0"
    missing = [k for k in missing if not k.startswith(frozen)]
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit the model (missing {missing[:5]}, unexpected {unexpected[:5]})")


def save_checkpoint(directory: str | Path, step: int, model: nn.Module, opt, sched, weight_net: nn.Module,
                    weight_opt, extra: dict | None = None) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v for k, v in model_tensors(model).items()}
    tensors.update({f"weight_net.{k}": v.detach().cpu().contiguous() for k, v in weight_net.state_dict().items()})
    opt_t, opt_meta = _flatten_optimizer("opt", opt)
    wopt_t, wopt_meta = _flatten_optimizer("wopt", weight_opt)
    tensors.update(opt_t)
    tensors.update(wopt_t)
    tensors["rng.torch"] = torch.get_rng_state()
    tmp = directory / ".last.safetensors.tmp"
    save_file(tensors, str(tmp))
    tmp.replace(directory / "last.safetensors")
    write_json(directory / "last.json", {"step": step, "opt": opt_meta, "wopt": wopt_meta,
                                         "sched": sched.state_dict(), "extra": extra or {}})


def load_checkpoint(directory: str | Path, model: nn.Module, opt, sched, weight_net: nn.Module, weight_opt) -> dict:
    """Restore everything saved by `save_checkpoint`; returns the JSON state (with the step to resume at)."""
    directory = Path(directory)
    meta = json.loads((directory / "last.json").read_text())
    tensors = load_file(str(directory / "last.safetensors"))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=False)
    weight_net.load_state_dict({k[11:]: v for k, v in tensors.items() if k.startswith("weight_net.")})
    _restore_optimizer("opt", opt, tensors, meta["opt"])
    _restore_optimizer("wopt", weight_opt, tensors, meta["wopt"])
    sched.load_state_dict(meta["sched"])
    torch.set_rng_state(tensors["rng.torch"])
    return meta
