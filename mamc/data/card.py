"""What a run's data holds, for any dataset: per-split sizes and topic frequencies (`corpus.json`, read by the
head/tail split and the topic figures) and the data card a person reads first (`DATA_CARD.md`). The embedded
corpus adds its noise labels; an ingested public dataset has none, and says so."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from mamc.config import Config
from mamc.manifest import SPLITS, read_manifest, write_json, write_text
from mamc.run import Run


def has_truth(rows: list[dict]) -> bool:
    """Whether rows carry the embedded corpus's ground truth (alignment, true caption, attributes)."""
    return any("aligned" in r for r in rows)


def by_frequency(counts: dict[str, int]) -> list[str]:
    """Topics from the most to the least frequent, ties by name: the one order every table and grouping uses
    (never the order of a JSON object's keys, nor the order rows happened to come in)."""
    return sorted(counts, key=lambda t: (-counts[t], t))


def corpus_stats(rows: list[dict], extra: dict | None = None) -> dict:
    """Rows, videos, topic frequencies and (where known) misaligned counts per split."""
    truth = has_truth(rows)
    out: dict = {**(extra or {}), "splits": {}}
    for split in SPLITS:
        part = [r for r in rows if r["split"] == split]
        out["splits"][split] = {
            "n": len(part), "videos": len({r["video_id"] for r in part}),
            "topics": dict(Counter(r["topic"] for r in part if r.get("topic"))),
            "misaligned": sum(not r.get("aligned", True) for r in part) if truth else None,
            "noise_kinds": dict(Counter(r["noise"] for r in part if r.get("noise"))),
        }
    return out


def split_summary(stats: dict) -> pd.DataFrame:
    """One row per non-empty split of `corpus_stats`: rows, videos, misaligned count and percentage (where
    known), topics and topic balance; counts as integers."""
    table = pd.DataFrame([
        {"split": split, "rows": v["n"], "videos": v["videos"], "misaligned": v["misaligned"],
         "misaligned (%)": None if v["misaligned"] is None else round(100 * v["misaligned"] / max(v["n"], 1), 1),
         "topics": len(v["topics"]), "min rows/topic": min(v["topics"].values(), default=0),
         "max rows/topic": max(v["topics"].values(), default=0)}
        for split, v in stats["splits"].items() if v["n"]]).set_index("split")
    counts = [c for c in table if c != "misaligned (%)"]
    return table.astype({c: "Int64" for c in counts})  # counts stay integers, unknown ones <NA>


def examples(rows: list[dict], k: int = 4) -> list[tuple[dict, str | None]]:
    """Rows to show, each with its noise label: half clean and half misaligned when the truth is known, else
    the first `k` videos (label None)."""
    if has_truth(rows):
        return ([(r, None) for r in rows if r["aligned"]][: k // 2]
                + [(r, r["noise"]) for r in rows if not r["aligned"]][: k - k // 2])
    first: dict[str, dict] = {}
    for r in rows:
        first.setdefault(r["video_id"], r)
    return [(r, None) for r in list(first.values())[:k]]


def dataset_card(rows: list[dict], cfg: Config, manifest: Path) -> str:
    """The data card of an ingested public dataset: what was ingested, split sizes, concepts."""
    s = corpus_stats(rows)
    lines = [f"# {cfg.dataset} — data card", "",
             f"Ingested with `mamc ingest` into `{manifest}`. Video paths are relative to `{cfg.data_dir}` (or absolute).",
             "Captions are the dataset's own; no row carries ground truth, so views that need it (misaligned pairs,",
             "caption accuracy against true attributes) are not available for this dataset.", "",
             "| split | rows | videos | concepts |", "|---|---|---|---|"]
    lines += [f"| {split} | {v['n']} | {v['videos']} | {len(v['topics'])} |" for split, v in s["splits"].items() if v["n"]]
    lines += ["", "`val` and `meta` (when present) were carved from the training videos by `mamc ingest --val",
              "--meta-per-concept` (mamc/data/splits.py, docs/PAPER_RUN.md); videos that cannot be decoded are",
              "listed in the frame cache's failures.jsonl.", "", "## Training concepts", "", "| concept | rows |", "|---|---|"]
    train = s["splits"]["train"]["topics"]
    lines += [f"| {t} | {train[t]} |" for t in by_frequency(train)] or ["| (none) | |"]
    return "\n".join(lines) + "\n"


def describe_dataset(cfg: Config) -> None:
    """Write `corpus.json` and `DATA_CARD.md` of an ingested dataset, when missing or older than its manifest."""
    run = Run(cfg)
    manifest = run.need("manifest")
    stale = [p for p in (run.path("corpus"), run.path("data card"))
             if not p.exists() or p.stat().st_mtime < manifest.stat().st_mtime]
    if stale:
        rows = read_manifest(manifest)
        write_json(run.path("corpus"), corpus_stats(rows, {"dataset": cfg.dataset}))
        write_text(run.path("data card"), dataset_card(rows, cfg, manifest))
