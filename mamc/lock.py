"""One job per run folder at a time: `RUN/.lock`, locked with flock and holding the owner's PID and command.

Every step that writes a run folder (corpus, frame cache, captions, training, reproduce, the CLI commands)
holds the lock while it works, so a second job on the same folder refuses at once instead of mixing its files
with the first one's. The operating system releases a flock when its process dies, so a lock left by a killed
job is simply taken over. Nested use is free: in the holding process, in the notebook kernels that
`mamc reproduce` starts (they inherit the lock's token through the environment), and on torchrun ranks other
than 0 (part of the same job).

Shards of one job run side by side (`mamc caption --shard i --num-shards N`, one process per GPU): each holds the
folder's lock *shared* and the lock of its own part (`RUN/.lock.<part>`) exclusively. Shards then exclude every
whole-folder job and a second process on the same shard, but not each other. What several shards would each make
once, if missing (the embedded captioner), is made under `part_lock`, which waits: one makes it, the others
wait and find it made.
"""
from __future__ import annotations

import fcntl
import functools
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TypeVar

LOCK_NAME = ".lock"
TOKEN_ENV = "MAMC_RUN_LOCK"
_held: dict[Path, dict] = {}
F = TypeVar("F", bound=Callable)


class RunLocked(RuntimeError):
    """Another live job holds the run folder."""


def _record(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _owners(path: Path) -> str:
    """Who holds a lock: the record of the folder's lock, else those of the parts held beside it (shards)."""
    records = [_record(path)] if _record(path) else [_record(p) for p in sorted(path.parent.glob(f"{LOCK_NAME}.*"))]
    records = [r for r in records if r]
    if not records:
        return "another process"
    return ", ".join(f"PID {r['pid']} on {r['host']} (`{r['command']}`, since {r['started']})" for r in records)


def _flock(path: Path, mode: int, wait: bool) -> int | None:
    """An open descriptor of `path` locked with `mode`, or None when another process holds a conflicting lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, mode if wait else mode | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextmanager
def _holding(path: Path, fd: int, record: dict | None) -> Iterator[None]:
    """Keep `fd`'s lock for the block, with `record` (the owner) written in the file while it is held."""
    if record is not None:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(record).encode())
    try:
        yield
    finally:
        if record is not None:
            os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _refusal(path: Path) -> RunLocked:
    return RunLocked(f"{path.parent} is in use by {_owners(path)}: wait for it to finish or stop it; two jobs on one "
                     "run folder would mix their files")


@contextmanager
def run_lock(run_dir: str | Path, command: str, part: str | None = None) -> Iterator[dict]:
    """Hold the run folder for the duration of the block; raises `RunLocked` naming the owner when another
    live process holds it. Yields the lock record (its `token` lets child processes share the lock). With `part`
    (a shard's name), the folder is held shared with the other parts and the part alone exclusively."""
    path = (Path(run_dir) / LOCK_NAME).resolve()
    if path in _held:
        yield _held[path]
        return
    if os.environ.get("RANK", "0") != "0" or (os.environ.get(TOKEN_ENV) and
                                              _record(path).get("token") == os.environ[TOKEN_ENV]):
        yield _record(path)
        return
    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
              "started": time.strftime("%Y-%m-%d %H:%M:%S"), "token": uuid.uuid4().hex}
    fd = _flock(path, fcntl.LOCK_SH if part else fcntl.LOCK_EX, wait=False)
    if fd is None:
        raise _refusal(path)
    with _holding(path, fd, None if part else record):
        part_fd = _flock(path.with_name(f"{LOCK_NAME}.{part}"), fcntl.LOCK_EX, wait=False) if part else None
        if part and part_fd is None:
            raise RunLocked(f"{path.parent}: {part} is in use by {_owners(path)}")
        with _holding(path.with_name(f"{LOCK_NAME}.{part}"), part_fd, record) if part else nullcontext():
            _held[path] = record
            try:
                yield record
            finally:
                del _held[path]


@contextmanager
def part_lock(run_dir: str | Path, part: str) -> Iterator[None]:
    """Wait for, then hold, one part of a run folder whose holder of the folder's lock may share it (shards that
    each need the same artifact made once)."""
    path = (Path(run_dir) / f"{LOCK_NAME}.{part}").resolve()
    with _holding(path, _flock(path, fcntl.LOCK_EX, wait=True), None):
        yield


@contextmanager
def shared_with_children(record: dict) -> Iterator[None]:
    """Let processes started inside the block (notebook kernels) work under the lock this process holds."""
    before = os.environ.get(TOKEN_ENV)
    os.environ[TOKEN_ENV] = record["token"]
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(TOKEN_ENV, None)
        else:
            os.environ[TOKEN_ENV] = before


def locked(command: str) -> Callable[[F], F]:
    """Decorator for steps whose first argument is a `Config`: hold its run folder's lock while they run."""
    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(cfg, *args, **kwargs):
            with run_lock(cfg.run_path, command):
                return fn(cfg, *args, **kwargs)
        return inner  # type: ignore[return-value]
    return wrap
