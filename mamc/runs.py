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
from mamc.data.card import by_frequency
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


# Fair tuning: each method with a knob of its own tries the same number of values of it (its grid in the
# configuration) on the first seed and keeps the one with the best validation R-sum; nothing is chosen on test.
# τ is shared by every method. Full MAMA takes the values chosen for its parts (the margin of `margin`, the MLP
# learning rate of `meta`) rather than searching the product of both grids. A knob the user set (not in
# `Config.tuned`) is not tuned: every method that has it trains at the value set.
SEARCHED = {"margin": "margin", "additive": "margin", "meta": "meta_lr"}  # method → its knob
INHERITED = {"mama": {"margin": "margin", "meta_lr": "meta"}}  # method → {knob: method whose choice it takes}
GRIDS = {"margin": "margin_sweep", "meta_lr": "meta_lr_sweep"}  # knob → the configuration field listing its values
_SHORT = {"margin": "m", "meta_lr": "lr", "captioner_snapshot": "c"}


def run_name(method: str, seed: int, **knobs: float) -> str:
    """`method_s<seed>`, then each tuned knob's value (`_m0.1`, `_lr0.001`): runs with other values are other runs."""
    return f"{method}_s{seed}" + "".join(f"_{_SHORT[k]}{v:g}" for k, v in knobs.items())


def knobs_of(method: str) -> tuple[str, ...]:
    """The configuration fields tuned for `method` (none for InfoNCE and VLM)."""
    return (SEARCHED[method],) if method in SEARCHED else tuple(INHERITED.get(method, ()))


def candidates(cfg: Config, knob: str) -> tuple[float, ...]:
    """The values tried for a knob; margin 0 is left out (it is InfoNCE, the baseline)."""
    return tuple(v for v in getattr(cfg, GRIDS[knob]) if not (knob == "margin" and v == 0))


def _searched_for(methods: tuple[str, ...] | list[str]) -> list[str]:
    """The methods with a knob of their own that `methods` need: those among them and those an inherited knob
    comes from."""
    needed = set(methods) | {src for m in methods for src in INHERITED.get(m, {}).values()}
    return [m for m in SEARCHED if m in needed]


def tuned_methods(cfg: Config, methods: tuple[str, ...] | list[str]) -> list[str]:
    """The methods whose knob is searched on validation for `methods` (their knob left unset by the user)."""
    return [m for m in _searched_for(methods) if SEARCHED[m] in cfg.tuned]


def knob_sources(cfg: Config, method: str) -> dict[str, str]:
    """How each knob of `method` got its value: "set" by the user, "tuned" on validation, or "configured" (left
    to tuning with an empty grid: the configuration's value)."""
    return {k: "set" if k not in cfg.tuned else "tuned" if candidates(cfg, k) else "configured" for k in knobs_of(method)}


def tuning_runs(cfg: Config, methods: tuple[str, ...] | list[str] | None = None) -> list[tuple[str, str, Config]]:
    """(run name, method, configuration) of the tuning runs that `methods` (default `cfg.methods`) need: each
    searched method at each candidate value of its knob, first seed."""
    seed = cfg.seeds[0]
    return [(run_name(method, seed, **{knob: v}), method, replace(cfg, **{knob: v}))
            for method in tuned_methods(cfg, cfg.methods if methods is None else methods)
            for knob in (SEARCHED[method],) for v in candidates(cfg, knob)]


def tuning_results(cfg: Config, methods: tuple[str, ...] | list[str] | None = None) -> pd.DataFrame:
    """One row per tuning run (of `methods`, default `cfg.methods`): method, knob, value, its best validation
    R-sum and step, and whether it was chosen. Raises `MissingArtifact` while a tuning run has not finished."""
    run, rows = Run(cfg), []
    for name, method, run_cfg in tuning_runs(cfg, methods):
        knob = SEARCHED[method]
        best = run.read("summary", name)["best"]
        rows.append({"method": method, "knob": knob, "value": getattr(run_cfg, knob), "val rsum": best["val/rsum"],
                     "best step": best["step"]})
    table = pd.DataFrame(rows, columns=["method", "knob", "value", "val rsum", "best step"])
    best = table.groupby("method", sort=False)["val rsum"].idxmax()  # the first of equals: the smaller value
    return table.assign(chosen=table.index.isin(best))


def chosen_values(cfg: Config, methods: tuple[str, ...] | list[str] | None = None) -> dict[str, dict[str, float]]:
    """method → {knob: value} for every method with a knob among `methods` (default `cfg.methods`): the value
    chosen on validation, or the configured one when the user set it (or its grid is empty); inherited knobs are
    copied from the method that chose them."""
    methods = cfg.methods if methods is None else methods
    table = tuning_results(cfg, methods)
    chosen = {m: {SEARCHED[m]: getattr(cfg, SEARCHED[m])} for m in _searched_for(methods)}
    for row in table[table["chosen"]].itertuples():
        chosen[row.method][row.knob] = float(row.value)
    for method, sources in INHERITED.items():
        if method in methods:
            chosen[method] = {k: chosen[src][k] for k, src in sources.items()}
    return chosen


def method_config(cfg: Config, method: str, chosen: dict[str, dict[str, float]] | None = None) -> Config:
    """The configuration a method's ablation runs train with: `cfg` with its tuned knobs set."""
    knobs = (chosen if chosen is not None else chosen_values(cfg, [method])).get(method, {}) if knobs_of(method) else {}
    return replace(cfg, **knobs)


def ablation_name(cfg: Config, method: str, seed: int, chosen: dict[str, dict[str, float]] | None = None) -> str:
    """The run of `method` and `seed` in the ablation (its tuned knobs in the name, so that the first seed's run
    is the tuning run of the chosen value, not a second training)."""
    run_cfg = method_config(cfg, method, chosen)
    return run_name(method, seed, **{k: getattr(run_cfg, k) for k in knobs_of(method)})


def ablation_runs(cfg: Config) -> list[tuple[str, str, int]]:
    """(run name, method, seed) of every run of the ablation (after tuning: the names hold the chosen values)."""
    chosen = chosen_values(cfg) if any(knobs_of(m) for m in cfg.methods) else {}
    return [(ablation_name(cfg, m, s, chosen), m, s) for s in cfg.seeds for m in cfg.methods]


def sweep_runs(cfg: Config) -> list[tuple[str, Config]]:
    """(run name, configuration) of every margin of the sweep (first seed): m = 0 is the InfoNCE run, the others
    are the margin method's tuning runs. None when the margin method is not among the methods trained."""
    if "margin" not in cfg.methods:
        return []
    seed = cfg.seeds[0]
    return [(run_name("infonce", seed) if m == 0 else run_name("margin", seed, margin=m), replace(cfg, margin=m))
            for m in cfg.margin_sweep]


def dose_runs(cfg: Config) -> list[tuple[str, int, Config]]:
    """(run name, seed, configuration) of the dose-response's `vlm` runs: every seed, with the captions of each
    weaker captioner (`Config.dose_snapshots`). The trained captioner's point is the ablation's own `vlm` runs."""
    if "vlm" not in cfg.methods:
        return []
    return [(run_name("vlm", s, captioner_snapshot=k), s, replace(cfg, captioner_snapshot=k))
            for k in cfg.dose_snapshots for s in cfg.seeds]


def weighted_method(cfg: Config) -> str:
    """The method whose weighting MLP the figures show: full MAMA when it was trained, else plain meta."""
    for method in ("mama", "meta"):
        if method in cfg.methods:
            return method
    raise MissingArtifact(f"no meta-weighted method among {cfg.methods}: add mama or meta and run {TRAIN}")


def topic_ranking(stats: dict) -> list[str]:
    """Topics from the most to the least frequent in the training split (ties by name), then the topics only
    the test split has (by name). Counts decide, never the order of a JSON object's keys (`corpus.json` is written
    with sorted keys)."""
    train = stats["splits"]["train"]["topics"]
    return by_frequency(train) + sorted(set(stats["splits"]["test"]["topics"]) - set(train))


def topic_groups(cfg: Config) -> dict[str, str]:
    """"head" for the most frequent half of the topics (`topic_ranking`; the smaller half when odd), "tail" for
    the rest."""
    ranked = topic_ranking(Run(cfg).read("corpus"))
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
