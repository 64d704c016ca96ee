"""The runs of an experiment: the method registry (defined once), how runs are named, which runs the ablation
and the margin sweep consist of, and readers of what the runs saved (models, weighting-MLP snapshots,
summaries, test results). Training writes these artifacts; reports and later stages only read them here."""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mamc.checkpoint import load_weights
from mamc.config import METHODS as METHOD_NAMES
from mamc.config import Config
from mamc.meta import WeightNet
from mamc.models import DualEncoder, build_model
from mamc.run import TRAIN, MissingArtifact, Run, resolve_device


@dataclass(frozen=True)
class Method:
    """A named combination of MAMA's parts: which loss, whether the weighting is meta-learned, whether the
    VLM captions are added to the training pairs."""

    loss: str
    meta: bool
    vlm: bool


METHODS = {
    "infonce": Method("infonce", meta=False, vlm=False),
    "margin": Method("subtractive", meta=False, vlm=False),
    "meta": Method("infonce", meta=True, vlm=False),
    "vlm": Method("infonce", meta=False, vlm=True),
    "mama": Method("subtractive", meta=True, vlm=True),
    "additive": Method("additive", meta=False, vlm=False),
}
assert tuple(METHODS) == METHOD_NAMES, "config.METHODS names the registry's methods, in order"


def run_name(method: str, seed: int, margin: float | None = None) -> str:
    return f"{method}_s{seed}" + ("" if margin is None else f"_m{margin:g}")


def sweep_name(cfg: Config, margin: float) -> str:
    """Run of the margin sweep at `margin` (first seed). m = 0 is InfoNCE exactly and m = cfg.margin is the
    ablation's margin run, so those two reuse the ablation's runs instead of training twice."""
    seed = cfg.seeds[0]
    if margin == 0 and "infonce" in cfg.methods:
        return run_name("infonce", seed)
    if margin == cfg.margin and "margin" in cfg.methods:
        return run_name("margin", seed)
    return run_name("margin", seed, margin)


def ablation_runs(cfg: Config) -> list[tuple[str, str, int]]:
    """(run name, method, seed) of every run of the ablation."""
    return [(run_name(m, s), m, s) for s in cfg.seeds for m in cfg.methods]


def sweep_runs(cfg: Config) -> list[tuple[str, Config]]:
    """(run name, configuration) of every margin of the sweep, including those the ablation already trained."""
    return [(sweep_name(cfg, m), replace(cfg, margin=m)) for m in cfg.margin_sweep]


def weighted_method(cfg: Config) -> str:
    """The method whose weighting MLP the figures show: full MAMA when it was trained, else plain meta."""
    for method in ("mama", "meta"):
        if method in cfg.methods:
            return method
    raise MissingArtifact(f"no meta-weighted method among {cfg.methods}: add mama or meta and run {TRAIN}")


def topic_groups(cfg: Config) -> dict[str, str]:
    """"head" for the most frequent training topics holding half the topics, "tail" for the rest."""
    stats = Run(cfg).read("corpus")
    ranked = list(stats["splits"]["train"]["topics"])
    ranked += [t for t in stats["splits"]["test"]["topics"] if t not in ranked]
    half = len(ranked) // 2
    return {t: ("head" if i < half else "tail") for i, t in enumerate(ranked)}


def load_trained(cfg: Config, name: str) -> DualEncoder:
    """A run's best-on-validation dual encoder, on the configured device."""
    model = build_model(cfg)
    load_weights(Run(cfg).need("best", name), model)
    return model.to(resolve_device(cfg.device)).eval()


def _weight_net(cfg: Config, path: Path) -> WeightNet:
    net = WeightNet(cfg.meta_hidden)
    load_weights(path, net)
    return net.eval()


def curve_values(net: WeightNet, loss_grid: np.ndarray) -> np.ndarray:
    """The MLP evaluated on a grid of loss values (unnormalised weights in (0, 1))."""
    with torch.no_grad():
        return net(torch.as_tensor(loss_grid, dtype=torch.float32)).numpy()


def weight_net_snapshots(cfg: Config, name: str) -> dict[int, WeightNet]:
    """The weighting MLP at every checkpoint of a run (for the loss→weight curves of notebook 04)."""
    return {int(path.stem.split("step")[1]): _weight_net(cfg, path)
            for path in sorted(Run(cfg).checkpoints(name).glob("weight_net_step*.safetensors"))}


def best_weight_net(cfg: Config, name: str) -> WeightNet | None:
    """The weighting MLP as it was at the run's best-on-validation step, beside the encoder `load_trained`
    returns (None for a run without meta weighting)."""
    path = Run(cfg).path("best weight net", name)
    return _weight_net(cfg, path) if path.exists() else None


def training_log(cfg: Config, methods: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Summaries (one row per ablation run of `methods`, default all) and scalars (one row per run and step)."""
    run = Run(cfg)
    summaries, scalars = [], []
    for name, method, _ in ablation_runs(cfg):
        if methods is not None and method not in methods:
            continue
        s = run.read("summary", name)
        summaries.append({"run": name, "method": s["method"], "seed": s["seed"], "best step": s["best"]["step"],
                          "val rsum": s["best"]["val/rsum"], "val t2v R@1": s["best"].get("val/t2v/R@1"),
                          "s/step": s["sec_per_step"]})
        scalars.append(pd.read_json(run.need("scalars", name), lines=True).assign(run=name))
    return pd.DataFrame(summaries), pd.concat(scalars, ignore_index=True)


def weighted_samples(cfg: Config, name: str, last_fraction: float = 0.5) -> pd.DataFrame:
    """Per-sample logs (loss, weight) of the last part of a run's training, with each topic's head/tail group;
    `aligned` is True/False where the data knows it (the embedded corpus, the VLM captions of it), else None."""
    df = pd.read_csv(Run(cfg).need("samples", name))
    df = df[df["step"] >= df["step"].max() * (1 - last_fraction)]
    return df.assign(group=df["topic"].map(topic_groups(cfg)),
                     aligned=df["aligned"].astype(str).str.lower().map({"true": True, "false": False}))


def is_evaluated(cfg: Config, name: str) -> bool:
    """Whether test.json exists for the run's current best checkpoint (so evaluation can be skipped)."""
    run = Run(cfg)
    test, summary = run.path("test", name), run.path("summary", name)
    return test.exists() and json.loads(test.read_text()).get("best_step") == json.loads(summary.read_text())["best"]["step"]
