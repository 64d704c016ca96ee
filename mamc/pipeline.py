"""Where a run's artifacts live, and the data each stage reads: one place, so that notebooks, the CLI and the
trainer agree on every path."""
from __future__ import annotations

from pathlib import Path

import torch

from mamc.config import Config
from mamc.data.video import build_frame_cache
from mamc.lock import locked
from mamc.manifest import read_manifest


class MissingArtifact(FileNotFoundError):
    """An input of a stage does not exist; the message says which notebook or command produces it."""


def require(path: Path, producer: str) -> Path:
    if not path.exists():
        raise MissingArtifact(f"{path} does not exist: run {producer} first")
    return path


def manifest_path(cfg: Config) -> Path:
    return cfg.data_dir / "manifest.jsonl"


def captions_path(cfg: Config) -> Path:
    """Captions written by the VLM (notebook 02 / `mamc caption`); sharded jobs write captions.shard*.jsonl."""
    return cfg.data_dir / "captions.jsonl"


def frame_cache_dir(cfg: Config) -> Path:
    return cfg.run_path / "cache" / f"frames_{cfg.clip_frames}x{cfg.frame_size}"


def text_cache_dir(cfg: Config) -> Path:
    return cfg.run_path / "cache" / "text"


def checkpoint_dir(cfg: Config, name: str) -> Path:
    return cfg.run_path / "checkpoints" / name


def log_dir(cfg: Config, name: str) -> Path:
    return cfg.run_path / "logs" / name


def load_rows(cfg: Config, split: str | None = None, with_vlm: bool = False) -> list[dict]:
    """Manifest rows (one split or all), plus the VLM captions of train videos when asked."""
    rows = read_manifest(require(manifest_path(cfg), "notebook 01 or `mamc synth`"), split)
    if with_vlm:
        files = sorted(cfg.data_dir.glob("captions*.jsonl"))
        if not files:
            require(captions_path(cfg), "notebook 02 or `mamc caption`")
        for f in files:
            rows += [r for r in read_manifest(f) if split is None or r["split"] == split]
    return rows


def prepare_corpus(cfg: Config, regenerate: bool = False) -> Path:
    """The run's manifest: the embedded corpus is generated (once, or again with `regenerate`); a public
    dataset (`cfg.dataset`, e.g. the paper profile's MSR-VTT) must have been ingested into the run folder."""
    path = manifest_path(cfg)
    if cfg.dataset == "embedded":
        if regenerate or not path.exists():
            from mamc.data.synthetic import generate_corpus

            generate_corpus(cfg)
        return path
    return require(path, f"`mamc ingest <dataset> <annotations…> --out {path}` (dataset {cfg.dataset!r}, videos under "
                         f"{cfg.data_dir})")


@locked("mamc frames")
def ensure_frames(cfg: Config, rows: list[dict], progress: bool = False) -> dict[str, int]:
    """Build (or top up) the frame cache for these rows; decoding happens once per video per run."""
    return build_frame_cache(rows, cfg.data_dir, frame_cache_dir(cfg), cfg.clip_frames, cfg.frame_size, progress)


def use_threads(n: int) -> None:
    """Fix torch's CPU thread count (0 leaves torch's default): results then do not depend on machine load."""
    if n and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def resolve_device(spec: str) -> torch.device:
    """"auto" is CUDA when present, else CPU."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)
