"""One job per run folder at a time: `RUN/.lock`, locked with flock and holding the owner's PID and command.

Every step that writes a run folder (corpus, frame cache, captions, training, reproduce, the CLI commands)
holds the lock while it works, so a second job on the same folder refuses at once instead of mixing its files
with the first one's. The operating system releases a flock when its process dies, so a lock left by a killed
job is simply taken over. Nested use is free: in the holding process, in the notebook kernels that
`mamc reproduce` starts (they inherit the lock's token through the environment), and on torchrun ranks other
than 0 (part of the same job).
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
from contextlib import contextmanager
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


@contextmanager
def run_lock(run_dir: str | Path, command: str) -> Iterator[dict]:
    """Hold the run folder for the duration of the block; raises `RunLocked` naming the owner when another
    live process holds it. Yields the lock record (its `token` lets child processes share the lock)."""
    path = (Path(run_dir) / LOCK_NAME).resolve()
    if path in _held:
        yield _held[path]
        return
    if os.environ.get("RANK", "0") != "0" or (os.environ.get(TOKEN_ENV) and
                                              _record(path).get("token") == os.environ[TOKEN_ENV]):
        yield _record(path)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        owner = _record(path)
        who = (f"PID {owner['pid']} on {owner['host']} (`{owner['command']}`, since {owner['started']})"
               if owner else "another process")
        raise RunLocked(f"{path.parent} is in use by {who}: wait for it to finish or stop it; two jobs on one run "
                        "folder would mix their files") from None
    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
              "started": time.strftime("%Y-%m-%d %H:%M:%S"), "token": uuid.uuid4().hex}
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(record).encode())
    _held[path] = record
    try:
        yield record
    finally:
        del _held[path]
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


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
