"""Manifest rows (one JSON object per line) with validation that names `file:line`, and atomic writes.

A manifest row has at least `video_id`, `video` (path relative to the data root), `caption` and `split`;
optional `source`, `topic`, `start`, `end`, and for QA `question`, `answer`, `candidates`.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

REQUIRED = ("video_id", "video", "caption", "split")
STRING_FIELDS = ("video_id", "video", "caption", "split", "source", "question", "answer")
RETRIEVAL_SPLITS = ("train", "meta", "val", "test")
QA_SPLITS = ("qa_train", "qa_val", "qa")
SPLITS = RETRIEVAL_SPLITS + QA_SPLITS


class ManifestError(ValueError):
    """A manifest row is invalid; the message starts with `file:line`."""


def validate_row(row: Any) -> str | None:
    """The reason a row is invalid on its own, or None when it is valid."""
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
    if any(c in row["video_id"] for c in "/\\\0") or row["video_id"].startswith("."):
        return f"video_id {row['video_id']!r} must be a plain name (no '/', '\\\\' or leading '.'): it names cache files"
    if row["split"] not in SPLITS:
        return f"unknown split {row['split']!r}; known splits: {', '.join(SPLITS)}"
    if not row["caption"].strip() and "question" not in row:
        return "empty caption"
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


def consistency_checker() -> Callable[[dict, str], str | None]:
    """A check of each row against the rows before it: one `video_id` names one clip (same file and time
    window) wherever it appears, and a clip belongs to at most one of train/meta/val/test (no leakage).
    Several captions of one clip, and QA rows about it, are fine. Call it with (row, where-it-is)."""
    clips: dict[str, tuple[tuple, str]] = {}
    splits: dict[str, tuple[str, str]] = {}

    def check(row: dict, where: str) -> str | None:
        vid, clip = row["video_id"], (row["video"], row.get("start"), row.get("end"))
        first, seen_at = clips.setdefault(vid, (clip, where))
        if first != clip:
            return f"duplicate video_id {vid!r}: {seen_at} gives it {first[0]!r} {first[1:]}, this row {clip[0]!r} {clip[1:]}"
        if row["split"] in RETRIEVAL_SPLITS:
            split, split_at = splits.setdefault(vid, (row["split"], where))
            if split != row["split"]:
                return f"video_id {vid!r} is in split {row['split']!r} here and in {split!r} at {split_at} (leakage)"
        return None

    return check


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-empty line; a line that is not UTF-8 JSON raises with `file:line`."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ManifestError(f"{path}:{lineno}: not valid UTF-8 (byte {raw[err.start]:#04x} at column "
                                    f"{err.start + 1})") from None
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as err:
                raise ManifestError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None


def read_manifest(path: str | Path, split: str | None = None) -> list[dict]:
    """Validated rows of a manifest, optionally one split only."""
    rows, check = [], consistency_checker()
    for lineno, row in iter_jsonl(path):
        reason = validate_row(row) or check(row, f"line {lineno}")
        if reason:
            raise ManifestError(f"{path}:{lineno}: {reason}")
        if split is None or row["split"] == split:
            rows.append(row)
    return rows


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write a file through a temporary file in the same folder, flushed to disk, then renamed over `path`:
    readers and a crash at any instant see the old file or the new one, never a mix. The file gets the
    permissions of a normally created one (the user's umask), which mkstemp alone would not give."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_jsonl(path: str | Path, rows: Iterable[dict], validate: bool = True) -> Path:
    """Write rows atomically (see `atomic_write`), validating each row and the rows together unless told not to."""
    def write(fh: IO[bytes]) -> None:
        check = consistency_checker()
        for i, row in enumerate(rows, 1):
            if validate:
                reason = validate_row(row) or check(row, f"row {i}")
                if reason:
                    raise ManifestError(f"{path}: row {i}: {reason}")
            fh.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))

    return atomic_write(path, write)


def append_jsonl(path: str | Path, *rows: dict) -> None:
    """Append rows and flush them to disk (once for all of them), for jobs that must survive interruption."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        fh.flush()
        os.fsync(fh.fileno())


def update_failures(path: str | Path, attempted: set[str], new: dict[str, dict], succeeded: set[str]) -> None:
    """Rewrite a failures file (one row per `video_id`) as the current state: earlier failures of items not
    attempted in this pass and not since done, plus this pass's failures. No duplicates, nothing stale."""
    path = Path(path)
    old = {r["video_id"]: r for _, r in iter_jsonl(path)} if path.exists() else {}
    state = {**{v: r for v, r in old.items() if v not in attempted and v not in succeeded}, **new}
    if state or path.exists():
        write_jsonl(path, list(state.values()), validate=False)


def write_json(path: str | Path, obj: Any) -> Path:
    """Atomic JSON write (same guarantee as `write_jsonl`)."""
    return atomic_write(path, lambda fh: fh.write(json.dumps(obj, indent=2, sort_keys=True, default=str).encode("utf-8")))


def write_text(path: str | Path, text: str) -> Path:
    """Atomic text write (UTF-8)."""
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
