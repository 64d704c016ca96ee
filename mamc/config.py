"""One configuration object shared by the CLI and every notebook's parameters cell.

Profiles are defined here once: `smoke` exercises every code path in seconds (tests, CI), `default` is the
README's main job on a 2-core CPU, `paper` is the full-scale GPU configuration on the public datasets.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
PROFILES = ("smoke", "default", "paper")
METHODS = ("infonce", "margin", "meta", "vlm", "mama", "additive")
EMBEDDED_TOPICS = 30  # 5 shapes × 6 colours in mamc.data.synthetic
TUNABLE = ("margin", "meta_lr")  # the knobs a method may have tuned on validation (mamc.runs)


@dataclass(frozen=True)
class Config:
    profile: str = "default"
    run_dir: str = "runs/default"
    seed: int = 0
    device: str = "auto"
    # Mixed precision of training: "auto" is bfloat16 autocast on CUDA and float32 elsewhere; "bfloat16" asks for it
    # on any device (the CPU runs the same code path as CUDA's, slower); "off" is float32. The loss is float32 under
    # any of them (mamc.losses).
    autocast: str = "auto"
    # torch CPU threads (0: torch's default). A fixed count keeps results bit-identical whatever the machine load;
    # one thread is also the fastest on a busy 2-core machine.
    threads: int = 1
    # Independent runs of the ablation, sweep and QA trained side by side in this many processes (each with
    # `threads` threads): the same results, both cores busy on an idle 2-core machine. The embedded captioner
    # trains data-parallel on as many processes: what one process learns, up to float rounding (which a long
    # training amplifies, so its captions are those of this setting).
    parallel_runs: int = 1
    dataset: str = "embedded"
    # The QA benchmark ingested beside `dataset` (named in tables and the paper column); "" for none (QA is skipped).
    qa_dataset: str = "embedded"
    # Embedded corpus (mamc.data.synthetic)
    n_train: int = 3000
    n_meta_per_topic: int = 10
    n_val: int = 400
    n_test: int = 1000
    n_qa: int = 600
    n_topics: int = 24
    zipf_exponent: float = 1.2
    noise_rate: float = 0.3
    clip_frames: int = 16
    clip_size: int = 32
    fps: int = 8
    # Frames seen by the model
    frames: int = 4
    frame_size: int = 32
    # Dual encoder
    video_backbone: str = "tiny"
    text_model: str = "embedded"
    freeze_text: bool = True
    embed_dim: int = 128
    # Width 48 with an MLP of twice the width: 0.72× the step time of width 64 with 4×, test R@1 within 0.13 points of
    # it (benchmarks/variants.py, docs/MEASUREMENTS.md).
    video_width: int = 48
    video_depth: int = 2
    video_heads: int = 4
    video_mlp_ratio: int = 2
    patch_size: int = 16
    # Objective
    margin: float = 0.1
    temperature: float = 0.05
    learn_temperature: bool = False
    # Knobs chosen on validation (mamc.runs) for the methods that have them: every tunable knob the user did not
    # set. A value the user sets (`--param margin=0.3`, a notebook's `overrides`) is the value that trains.
    tuned: tuple[str, ...] = TUNABLE
    # Meta weighting
    meta_hidden: int = 100
    meta_lr: float = 1e-3
    virtual_lr: float = 0.1
    # The bi-level step every `meta_interval` steps (the MLP's weights are applied at every step): 10 costs 1.17× an
    # InfoNCE step in the training loop instead of 2.8× (exact), and its test R@1 lies within the exact mode's seed
    # interval (benchmarks/variants.py, docs/MEASUREMENTS.md).
    meta_interval: int = 10
    meta_params: str = "all"
    normalize_weights: bool = True
    meta_batch_size: int = 64
    # Optimisation
    # At most `steps`; a run ends earlier once `patience` validations in a row (every `eval_every` steps) bring
    # no new best of the mean val R-sum of the last `plateau_window` validations (0: train all `steps`), and keeps
    # its best step.
    steps: int = 6000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    # After warmup: "constant", or "cosine" decay to zero at `steps`. A run that ends at its plateau needs the
    # constant rate: under a decay to the limit, the limit itself would flatten the curves it is meant to watch
    # (runs with more data then stop because their rate has run out, not because they have learnt what they can).
    lr_schedule: str = "constant"
    grad_clip: float = 1.0
    ckpt_every: int = 100
    eval_every: int = 50
    patience: int = 5
    plateau_window: int = 4
    num_workers: int = 0
    # Where training reads clips: "cache" (one .npy per clip: the embedded default, one node) or "shards"
    # (WebDataset tars made by `mamc shard`, streamed across ranks and workers: web-scale data, mamc.data.stream).
    data_format: str = "cache"
    shard_size: int = 1000
    shard_streams: int = 2  # shard streams per rank; the DataLoader workers (num_workers) must divide it
    qa_eta: float = 1.0
    qa_steps: int = 100
    # Experiments run by notebooks 03 and 05
    methods: tuple[str, ...] = METHODS
    seeds: tuple[int, ...] = (0, 1, 2)
    # Tuning grids, searched on validation (mamc.runs: margin for margin/additive, meta_lr for meta; mama takes
    # both choices). The margin grid is also the sweep of notebook 05 (m = 0 is InfoNCE).
    margin_sweep: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2)
    meta_lr_sweep: tuple[float, ...] = (1e-5, 1e-4, 1e-3)
    # VLM captioning (mamc.caption)
    captioner: str = "embedded"
    # The captioner's draw: the seed of everything random in making captions (the embedded captioner's corpus,
    # initialisation and batch order; each video's sampling seed). -1 takes the run's `seed`; another value makes
    # another captioner of the same recipe on the same data, so that its share of the results' variation is measured.
    captioner_seed: int = -1
    # The caption recipe (see CAPTION_RECIPES) sets the prompt, sampling and length rule; settings named
    # explicitly win over it.
    caption_recipe: str = "paper"
    # "transformers" (CPU and GPU) or "vllm" (a GPU, `pip install "mamc[vllm]"`): mamc.caption.vllm_engine
    caption_engine: str = "transformers"
    caption_input: str = "grid"
    # The embedded captioner trains on a corpus of its own (mamc.caption.corpus: `captioner_corpus` clips, the
    # first `captioner_heldout` held out to measure it), disjoint from the benchmark. Snapshots after each of
    # `dose_captioner_steps` steps are the weaker captioners of the dose-response; `captioner_snapshot` = k selects
    # one (its captions, its vlm runs; 0 is the trained captioner).
    captioner_corpus: int = 4000
    captioner_heldout: int = 200
    captioner_vision_steps: int = 1500
    captioner_steps: int = 400
    captioner_batch_size: int = 32
    captioner_lr: float = 5e-4
    dose_captioner_steps: tuple[int, ...] = (100, 200)
    captioner_snapshot: int = 0
    grid_rows: int = 3
    grid_cols: int = 4
    grid_cell: int = 32
    prompt: str = "In a sentence, describe the process in the video."
    gen_temperature: float = 0.2
    max_caption_tokens: int = 0  # resample a caption longer than this many tokens (0: keep every caption)
    max_new_tokens: int = 24
    caption_batch_size: int = 16
    dtype: str = "auto"

    @property
    def run_path(self) -> Path:
        """The run folder as an absolute path (relative paths are taken from the repository root)."""
        p = Path(self.run_dir)
        return p if p.is_absolute() else REPO_ROOT / p

    @property
    def data_dir(self) -> Path:
        return self.run_path / "data"

    @property
    def caption_seed(self) -> int:
        """The seed of the captions (`captioner_seed`, or the run's `seed` when that is -1)."""
        return self.seed if self.captioner_seed < 0 else self.captioner_seed

    @property
    def dose_snapshots(self) -> tuple[int, ...]:
        """The embedded captioner's snapshots that the dose-response uses (steps before the end of its training);
        none for any other captioner."""
        if self.captioner != "embedded":
            return ()
        return tuple(k for k in self.dose_captioner_steps if 0 < k < self.captioner_steps)


# The paper's text (§3.3) and the authors' released demo differ; both are named here, the paper's is the default.
CAPTION_RECIPES: dict[str, dict[str, Any]] = {
    "paper": dict(prompt="In a sentence, describe the process in the video.", gen_temperature=0.2, grid_rows=3,
                  grid_cols=4, max_caption_tokens=0),
    "demo": dict(prompt="Write a caption sentence for the video in order from left to right, top to bottom.",
                 gen_temperature=0.2, grid_rows=3, grid_cols=4, max_caption_tokens=40),
}

_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": dict(
        n_train=192, n_topics=8, n_meta_per_topic=2, n_val=48, n_test=64, n_qa=48, clip_frames=8, clip_size=32,
        frames=4, patch_size=16, steps=12, batch_size=16, meta_batch_size=16, warmup_steps=2, ckpt_every=6, eval_every=6,
        video_width=32, video_depth=1, video_heads=2, embed_dim=32, meta_hidden=16, qa_steps=6,
        seeds=(0,), margin_sweep=(0.0, 0.2), meta_lr_sweep=(1e-3,), grid_cell=16, max_new_tokens=8, caption_batch_size=8,
        captioner_corpus=48, captioner_heldout=8, captioner_vision_steps=4, captioner_steps=4, captioner_batch_size=8,
        dose_captioner_steps=(2,),
    ),
    # Captions are the same at any batch size (one sampler per video); 64 at a time is 14% faster here than 16.
    "default": dict(parallel_runs=2, caption_batch_size=64),
    "paper": dict(
        dataset="MSR-VTT", qa_dataset="MSRVTT-QA", video_backbone="openai/clip-vit-base-patch32",
        text_model="openai/clip-vit-base-patch32",
        freeze_text=False, frames=12, frame_size=224, patch_size=32, embed_dim=512, steps=20000, batch_size=128,
        lr=1e-5, warmup_steps=1000, ckpt_every=1000, eval_every=1000, num_workers=8, shard_streams=8,
        # At τ = 0.01 the margin adds ≈ m·sin θ/τ logits to each positive: m = 0.1 adds 10 and collapses training
        # (benchmarks/margin_temperature.py, docs/PAPER_RUN.md §8); 0.01 adds one, as m = 0.05 does at τ = 0.05.
        margin=0.01, margin_sweep=(0.0, 0.005, 0.01, 0.02),
        temperature=0.01, seeds=(0, 1, 2), captioner="llava-hf/llava-1.5-7b-hf", dtype="bfloat16",
        grid_cell=336, max_new_tokens=64, meta_params="head", meta_interval=1, threads=0, dose_captioner_steps=(),
    ),
}


# Valid values, checked before any work starts: inclusive lower bounds, upper bounds, strict positives, choices.
_AT_LEAST = dict(
    seed=0, captioner_seed=-1, threads=0, parallel_runs=1,
    n_train=1, n_meta_per_topic=1, n_val=1, n_test=1, n_qa=0, n_topics=1, zipf_exponent=0.0,
    noise_rate=0.0, clip_frames=2, clip_size=8, fps=1, frames=1, frame_size=8, embed_dim=1, video_width=1,
    video_depth=1, video_heads=1, video_mlp_ratio=1, patch_size=1, margin=0.0, meta_hidden=1, virtual_lr=0.0, meta_interval=1,
    meta_batch_size=2, steps=1, batch_size=2, weight_decay=0.0, warmup_steps=0, ckpt_every=1, eval_every=1, patience=0,
    plateau_window=1, num_workers=0, qa_eta=0.0, qa_steps=0, captioner_vision_steps=0, captioner_steps=0, captioner_corpus=2,
    captioner_heldout=1, captioner_batch_size=1, captioner_snapshot=0, grid_rows=1, grid_cols=1, grid_cell=1,
    gen_temperature=0.0, max_new_tokens=1, caption_batch_size=1, max_caption_tokens=0,
)
_AT_MOST = dict(n_topics=EMBEDDED_TOPICS, noise_rate=1.0, margin=math.pi)
_POSITIVE = ("temperature", "lr", "meta_lr", "grad_clip", "captioner_lr", "shard_size", "shard_streams")
_CHOICES = dict(autocast=("auto", "bfloat16", "off"), meta_params=("all", "head"),
                caption_input=("grid", "frames"), caption_recipe=tuple(CAPTION_RECIPES),
                dtype=("auto", "float32", "bfloat16", "float16"), lr_schedule=("constant", "cosine"),
                data_format=("cache", "shards"), caption_engine=("transformers", "vllm"))
_TYPE_WORDS = {int: ("an integer", "integers"), float: ("a number", "numbers"), str: ("a string", "strings")}


def config_fields() -> dict[str, type]:
    return {f.name: f.type for f in fields(Config)}


def coerce(name: str, value: Any) -> Any:
    """Turn a CLI string (`key=value`) into the field's type; errors name the setting, unknown keys list the
    known ones."""
    default = getattr(Config(), name, None)
    if name not in config_fields():
        raise KeyError(f"unknown config key {name!r}; known keys: {', '.join(sorted(config_fields()))}")
    if not isinstance(value, str):
        return tuple(value) if isinstance(default, tuple) else value
    if isinstance(default, bool):
        if value.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"{name} expects true/false, got {value!r}")
        return value.lower() in ("true", "1")
    kind = type(default[0]) if isinstance(default, tuple) and default else type(default)
    try:
        if isinstance(default, tuple):
            return tuple(kind(v) for v in value.split(",") if v)
        return kind(value)
    except ValueError:
        one, many = _TYPE_WORDS[kind]
        what = f"a comma-separated list of {many}" if isinstance(default, tuple) else one
        raise ValueError(f"{name} expects {what}, got {value!r}") from None


def check_values(cfg: Config) -> None:
    """Reject settings outside their valid range, naming the setting and the range."""
    for name, value in ((f.name, getattr(cfg, f.name)) for f in fields(cfg)):
        lo, hi = _AT_LEAST.get(name), _AT_MOST.get(name)
        if name in _POSITIVE and not value > 0:
            raise ValueError(f"{name}={value} is out of range: it must be > 0")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = f"{lo} ≤ {name}" + (f" ≤ {hi:g}" if hi is not None else "")
            raise ValueError(f"{name}={value} is out of range: expected {bounds}")
        if name in _CHOICES and value not in _CHOICES[name]:
            raise ValueError(f"{name}={value!r} is not one of {', '.join(_CHOICES[name])}")
    if cfg.video_backbone == "tiny" and cfg.video_width % cfg.video_heads:
        raise ValueError(f"video_width={cfg.video_width} must divide by video_heads={cfg.video_heads}")
    if cfg.video_backbone == "tiny" and cfg.frame_size % cfg.patch_size:
        raise ValueError(f"frame_size={cfg.frame_size} must divide by patch_size={cfg.patch_size}")
    if cfg.captioner_heldout >= cfg.captioner_corpus:
        raise ValueError(f"captioner_heldout={cfg.captioner_heldout} leaves no training clip of captioner_corpus="
                         f"{cfg.captioner_corpus}")
    if not cfg.seeds:
        raise ValueError("seeds must name at least one seed")
    if set(cfg.tuned) - set(TUNABLE):
        raise ValueError(f"tuned={list(cfg.tuned)} names knobs that are not tuned; tunable: {', '.join(TUNABLE)}")
    unknown = set(cfg.methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; known: {METHODS}")


def untouched(knobs: tuple[str, ...], overrides: dict[str, Any]) -> tuple[str, ...]:
    """The knobs that `overrides` leaves unset (so they stay tuned)."""
    return tuple(k for k in knobs if overrides.get(k) is None)


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """`key=value` strings → configuration overrides, each checked (type and key) with a message naming it."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--param expects key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        coerce(key, raw)
        out[key] = raw
    return out


def load_config(profile: str = "default", **overrides: Any) -> Config:
    """The profile's configuration with `overrides` applied (strings are coerced to the field types), checked.
    A tunable knob among the overrides is set, not tuned (unless the overrides say which knobs are tuned, as a
    saved configuration does)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    values = dict(_PROFILES[profile], profile=profile, run_dir=f"runs/{profile}")
    for key, value in overrides.items():
        if value is not None:
            values[key] = coerce(key, value)
    if overrides.get("tuned") is None:
        values["tuned"] = untouched(TUNABLE, overrides)
    recipe = values.get("caption_recipe", Config.caption_recipe)
    if recipe not in CAPTION_RECIPES:
        raise ValueError(f"caption_recipe={recipe!r} is not one of {', '.join(CAPTION_RECIPES)}")
    values = {**CAPTION_RECIPES[recipe], **values}
    cfg = replace(Config(), **values)
    check_values(cfg)
    return cfg
