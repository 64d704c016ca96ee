"""Manifest rows (one JSON object per line) with validation that names `file:line`, and atomic writes.

A manifest row has at least `video_id`, `video` (path relative to the data root), `caption` and `split`;
optional `source`, `topic`, `start`, `end`, and for QA `question`, `answer`, `candidates`.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

REQUIRED = ("video_id", "video", "caption", "split")
STRING_FIELDS = ("video_id", "video", "caption", "split", "source", "question", "answer")


class ManifestError(ValueError):
    """A manifest row is invalid; the message starts with `file:line`."""


def validate_row(row: Any) -> str | None:
    """The reason a row is invalid, or None when it is valid."""
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    missing = [k for k in REQUIRED if k not in row]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    for key in STRING_FIELDS:
        if key in row and not isinstance(row[key], str):
            return f"field {key!r} must be a string, got {type(row[key]).__name__}"
    if not row["video_id"]:
        return "empty video_id"
    for key in ("start", "end"):
        if key in row and row[key] is not None and not isinstance(row[key], (int, float)):
            return f"field {key!r} must be a number"
    if row.get("start") is not None and row.get("end") is not None and row["end"] <= row["start"]:
        return f"end ({row['end']}) must be after start ({row['start']})"
    if "candidates" in row:
        cands = row["candidates"]
        if not isinstance(cands, list) or not all(isinstance(c, str) for c in cands):
            return "field 'candidates' must be a list of strings"
        if "answer" in row and row["answer"] not in cands:
            return f"answer {row['answer']!r} is not among the candidates"
    return None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-empty line; a line that is not JSON raises with `file:line`."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as err:
                raise ManifestError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None


def read_manifest(path: str | Path, split: str | None = None) -> list[dict]:
    """Validated rows of a manifest, optionally one split only."""
    rows = []
    for lineno, row in iter_jsonl(path):
        reason = validate_row(row)
        if reason:
            raise ManifestError(f"{path}:{lineno}: {reason}")
        if split is None or row["split"] == split:
            rows.append(row)
    return rows


def write_jsonl(path: str | Path, rows: Iterable[dict], validate: bool = True) -> Path:
    """Write rows atomically (temporary file + rename) so a crash never leaves half a manifest."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for i, row in enumerate(rows, 1):
                if validate:
                    reason = validate_row(row)
                    if reason:
                        raise ManifestError(f"{path}: row {i}: {reason}")
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def append_jsonl(path: str | Path, row: dict) -> None:
    """Append one row and flush it to disk, for jobs that must survive interruption."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def write_json(path: str | Path, obj: Any) -> Path:
    """Atomic JSON write (same guarantee as `write_jsonl`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)
    return path
