"""Training logs: per-sample rows (CSV), scalars (JSONL, and CSV for spreadsheets), and the byte lengths that
a checkpoint records so that a resumed run cuts away whatever was logged after it (even half a row)."""
from __future__ import annotations

import csv
import os
from pathlib import Path

from mamc.manifest import append_jsonl, iter_jsonl

SAMPLE_FIELDS = ("step", "video_id", "topic", "source", "aligned", "loss", "weight")


class LogError(RuntimeError):
    """A log does not match the checkpoint it should continue from."""


def append_csv(path: Path, rows: list[dict], fields: tuple[str, ...] | list[str]) -> None:
    """Append rows (header first in a new or empty file), flushed to disk before a checkpoint records the length."""
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fields), extrasaction="ignore")
        if fh.tell() == 0:
            writer.writeheader()
        writer.writerows(rows)
        fh.flush()
        os.fsync(fh.fileno())


def write_scalars(logs: Path, rows: list[dict]) -> None:
    """Append scalar rows to scalars.jsonl, and to scalars.csv (one column per scalar) so that spreadsheets and
    pandas read it directly. The CSV is rewritten from the JSONL only when the rows bring a column it lacks
    (rows gain keys at validation steps): rewriting it at every checkpoint made a run's logging grow with the
    square of its length. A resumed run rewrites it too (`train`), so a CSV cut by a kill never lasts."""
    append_jsonl(logs / "scalars.jsonl", *rows)
    table = logs / "scalars.csv"
    header: list[str] = []
    if table.exists():
        with table.open(newline="") as fh:
            header = next(csv.reader(fh), [])
    if header and {k for r in rows for k in r} <= set(header):
        append_csv(table, rows, header)
    else:
        write_scalars_csv(logs)


def write_scalars_csv(logs: Path) -> None:
    rows = [r for _, r in iter_jsonl(logs / "scalars.jsonl")]
    fields = sorted({k for r in rows for k in r}, key=lambda k: (k != "step", k))
    tmp = logs / ".scalars.csv.tmp"
    tmp.unlink(missing_ok=True)
    append_csv(tmp, rows, fields)
    tmp.replace(logs / "scalars.csv")


def log_lengths(paths: list[Path]) -> dict[str, int]:
    """Byte length of each log file now (0 when it does not exist yet), to be recorded with a checkpoint."""
    return {p.name: p.stat().st_size if p.exists() else 0 for p in paths}


def cut_logs(directory: Path, lengths: dict[str, int]) -> None:
    """Cut each log back to the length recorded with the checkpoint being resumed (dropping rows, or half a
    row, written after it); logs a fresh run finds from a killed predecessor are emptied."""
    for name, length in lengths.items():
        path = directory / name
        if not path.exists():
            if length:
                raise LogError(f"{path} is missing but the checkpoint recorded {length} bytes of it")
            continue
        if path.stat().st_size < length:
            raise LogError(f"{path} is shorter ({path.stat().st_size} bytes) than the checkpoint recorded ({length})")
        os.truncate(path, length)
