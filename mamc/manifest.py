"""Manifest rows (one JSON object per line) with validation that names `file:line`, and atomic writes.

A manifest row has at least `video_id`, `video` (path relative to the data root), `caption` and `split`;
optional `source`, `topic`, `start`, `end`, and for QA `question`, `answer`, `candidates`.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from array import array
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

REQUIRED = ("video_id", "video", "caption", "split")
STRING_FIELDS = ("video_id", "video", "caption", "split", "source", "question", "answer")
RETRIEVAL_SPLITS = ("train", "meta", "val", "test")
QA_SPLITS = ("qa_train", "qa_val", "qa")
SPLITS = RETRIEVAL_SPLITS + QA_SPLITS
_REQUIRED_SET = frozenset(REQUIRED)
_NOT_PLAIN = re.compile(r"[/\\\0]|^\.")
# One encoder for every row: `json.dumps` with options builds a new one per call, a third of a row's cost.
encode_row = json.JSONEncoder(ensure_ascii=False).encode


class ManifestError(ValueError):
    """A manifest row is invalid; the message starts with `file:line`."""


def validate_row(row: Any) -> str | None:
    """The reason a row is invalid on its own, or None when it is valid."""
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    if not row.keys() >= _REQUIRED_SET:
        return f"missing field(s) {', '.join(k for k in REQUIRED if k not in row)}"
    for key in STRING_FIELDS:
        if key in row and not isinstance(row[key], str):
            return f"field {key!r} must be a string, got {type(row[key]).__name__}"
    if not row["video_id"]:
        return "empty video_id"
    if _NOT_PLAIN.search(row["video_id"]):
        return f"video_id {row['video_id']!r} must be a plain name (no '/', '\\\\' or leading '.'): it names cache files"
    if row["split"] not in SPLITS:
        return f"unknown split {row['split']!r}; known splits: {', '.join(SPLITS)}"
    if not row["caption"].strip() and "question" not in row:
        return "empty caption"
    if "start" in row or "end" in row:
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


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()


def id_hash(text: str) -> int:
    return int.from_bytes(_digest(text), "little")


_RECORD = np.dtype([("video", "<u8"), ("clip", "<u8"), ("split", "i1"), ("ordinal", "<u8")])


class ClipIndex:
    """The rule that holds across rows, checked in bounded memory: one `video_id` names one clip (same file and
    time window) wherever it appears, and a clip belongs to at most one of train/meta/val/test (no leakage).
    Several captions of one clip, and QA rows about it, are fine.

    Rows are added as they stream past and kept as two 64-bit hashes and a split code. Past `SPILL` rows they go
    to disk instead, into `PARTS` files by the hash of their id (all rows of an id in one file), and
    `first_conflict` checks one file at a time: memory stays at a few dozen MB for 10M rows, disk takes 25
    bytes a row until the index is closed. Two different ids share a hash with probability about n²/2⁶⁵ (3·10⁻⁶
    at 10M rows); such a pair would be reported as a conflict, never missed."""

    SPILL, PARTS = 1 << 20, 64

    def __init__(self, spill_dir: str | Path | None = None) -> None:
        self.video, self.clip, self.split = bytearray(), bytearray(), array("b")
        self.spill_dir, self.spilled, self.added = spill_dir, None, 0

    def __enter__(self) -> ClipIndex:
        return self

    def __exit__(self, *exc) -> None:
        if self.spilled is not None:
            self.spilled.cleanup()

    def add(self, row: dict) -> None:
        clip = row["video"]
        if "start" in row or "end" in row:
            clip += f"\0{[None if row.get(k) is None else float(row[k]) for k in ('start', 'end')]}"
        self.video += _digest(row["video_id"])
        self.clip += _digest(clip)
        self.split.append(_SPLIT_CODE.get(row["split"], -1))
        if len(self.split) == self.SPILL:
            self._spill()

    def _records(self) -> np.ndarray:
        n = len(self.split)
        records = np.empty(n, _RECORD)
        records["video"], records["clip"] = np.frombuffer(self.video, np.uint64), np.frombuffer(self.clip, np.uint64)
        records["split"], records["ordinal"] = np.frombuffer(self.split, np.int8), np.arange(self.added, self.added + n)
        self.added += n
        self.video, self.clip, self.split = bytearray(), bytearray(), array("b")
        return records

    def _spill(self) -> None:
        if self.spilled is None:
            self.spilled = tempfile.TemporaryDirectory(dir=self.spill_dir, prefix=".clip-index.")
        records = self._records()
        part = records["video"] % self.PARTS
        for p in range(self.PARTS):
            with open(Path(self.spilled.name) / f"{p:02d}", "ab") as fh:
                records[part == p].tofile(fh)

    def __len__(self) -> int:
        return self.added + len(self.split)

    def first_conflict(self) -> tuple[int, int] | None:
        """(row, the earlier row it contradicts) for the first row, in the order added, that gives its `video_id`
        another clip than the id's first row, or another retrieval split than the id's first retrieval row."""
        if self.spilled is None:
            parts = [self._records()]
        else:
            self._spill()
            parts = (np.fromfile(Path(self.spilled.name) / f"{p:02d}", _RECORD) for p in range(self.PARTS))
        found = []
        for records in parts:
            retrieval = records[records["split"] >= 0]
            found += [_against_first(records["ordinal"], records["video"], records["clip"]),
                      _against_first(retrieval["ordinal"], retrieval["video"], retrieval["split"])]
        found = [f for f in found if f is not None]
        return min(found) if found else None


_SPLIT_CODE = {s: i for i, s in enumerate(RETRIEVAL_SPLITS)}


def _against_first(ordinals: np.ndarray, keys: np.ndarray, values: np.ndarray) -> tuple[int, int] | None:
    """The first (ordinal, first ordinal of its key) whose value differs from its key's first value; `ordinals`
    ascend, so a stable sort by key keeps each key's rows in their order."""
    if not len(keys):
        return None
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    first = order[np.repeat(starts, np.diff(np.r_[starts, len(order)]))]
    bad = np.flatnonzero(values[order] != values[first])
    if not len(bad):
        return None
    k = bad[np.argmin(ordinals[order[bad]])]
    return int(ordinals[order[k]]), int(ordinals[first[k]])


def conflict_reason(row: dict, earlier: dict, earlier_at: str) -> str:
    """Why `row` contradicts `earlier` (found at `earlier_at`), in the words of `ClipIndex`'s rule."""
    clip = lambda r: (r["video"], r.get("start"), r.get("end"))
    if clip(row) != clip(earlier):
        return (f"duplicate video_id {row['video_id']!r}: {earlier_at} gives it {clip(earlier)[0]!r} {clip(earlier)[1:]}, "
                f"this row {clip(row)[0]!r} {clip(row)[1:]}")
    return f"video_id {row['video_id']!r} is in split {row['split']!r} here and in {earlier['split']!r} at {earlier_at} (leakage)"


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
    rows, lines = [], array("Q")
    with ClipIndex(Path(path).parent) as index:
        for lineno, row in iter_jsonl(path):
            reason = validate_row(row)
            if reason:
                raise ManifestError(f"{path}:{lineno}: {reason}")
            index.add(row)
            lines.append(lineno)
            if split is None or row["split"] == split:
                rows.append(row)
        conflict = index.first_conflict()
    if conflict:
        at, before = lines[conflict[0]], lines[conflict[1]]
        found = {n: r for n, r in iter_jsonl(path) if n in (at, before)}
        raise ManifestError(f"{path}:{at}: {conflict_reason(found[at], found[before], f'line {before}')}")
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
        with os.fdopen(fd, "w+b") as fh:
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
        with ClipIndex(Path(path).parent) as index:
            for i, row in enumerate(rows, 1):
                if validate:
                    reason = validate_row(row)
                    if reason:
                        raise ManifestError(f"{path}: row {i}: {reason}")
                    index.add(row)
                fh.write((encode_row(row) + "\n").encode("utf-8"))
            conflict = index.first_conflict() if validate else None
        if conflict:
            fh.seek(0)
            found = {k: json.loads(line) for k, line in enumerate(fh) if k in conflict}
            at, before = conflict
            raise ManifestError(f"{path}: row {at + 1}: {conflict_reason(found[at], found[before], f'row {before + 1}')}")

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
