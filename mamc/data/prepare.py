"""The data each stage reads from a run folder: manifest rows (with the VLM captions when asked), the
embedded corpus made on demand, and the frame cache filled once per video."""
from __future__ import annotations

from pathlib import Path

from mamc.config import Config
from mamc.data.card import describe_dataset
from mamc.data.video import build_frame_cache
from mamc.lock import locked
from mamc.manifest import read_manifest
from mamc.run import MissingArtifact, Run


def load_rows(cfg: Config, split: str | None = None, with_vlm: bool = False) -> list[dict]:
    """Manifest rows (one split or all), plus the VLM captions of train videos when asked, in the manifest's order
    of videos whatever the order they were captioned in (one job, several shards, or a resumed job)."""
    run = Run(cfg)
    rows = read_manifest(run.need("manifest"), split)
    if with_vlm:
        files = run.caption_files()
        if not files:
            run.need("captions")
        vlm = [r for f in files for r in read_manifest(f) if split is None or r["split"] == split]
        place = {vid: i for i, vid in enumerate(dict.fromkeys(r["video_id"] for r in rows))}
        rows += sorted(vlm, key=lambda r: place.get(r["video_id"], len(place)))
    return rows


def prepare_corpus(cfg: Config, regenerate: bool = False) -> Path:
    """The run's manifest: the embedded corpus is generated (once, or again with `regenerate`); a public
    dataset (`cfg.dataset`, e.g. the paper profile's MSR-VTT) must have been ingested into the run folder, and
    gets its statistics and data card here."""
    path = Run(cfg).path("manifest")
    if cfg.dataset == "embedded":
        if regenerate or not path.exists():
            from mamc.data.synthetic import generate_corpus

            generate_corpus(cfg)
        return path
    if not path.exists():
        raise MissingArtifact(f"{path} does not exist: ingest dataset {cfg.dataset!r} first with `mamc ingest "
                              f"<dataset> <annotations…> --out {path}` (see docs/PAPER_RUN.md)")
    describe_dataset(cfg)
    return path


@locked("mamc frames")
def ensure_frames(cfg: Config, rows: list[dict], progress: bool = False) -> dict[str, int]:
    """Build (or top up) the frame cache for these rows; decoding happens once per video per run."""
    return build_frame_cache(rows, cfg.data_dir, Run(cfg).frame_cache, cfg.clip_frames, cfg.frame_size, progress)
