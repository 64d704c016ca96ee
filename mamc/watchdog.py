"""Headless notebook execution that never hangs: a papermill engine whose client is watched by a thread.

A papermill client waits for a cell's reply without a deadline, and a kernel can lose that reply (reported for
ipykernel 7 with widgets: papermill #711). Cells here may legitimately run for many minutes, so a plain
timeout is no answer. The watchdog instead stops a cell that shows no sign of life:

* the kernel said the cell finished (status idle) but its reply has not come for `reply` seconds;
* neither a message from the cell nor CPU time used by the kernel (or its worker processes) for `idle` s;
* optionally, no message at all for `silence` seconds, whatever the CPU does.

It stops such a cell by killing the kernel's process tree; the client then fails as for a dead kernel, which
papermill turns into a saved partial notebook, and `run_notebook` raises `Hang` naming the cell and why.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import psutil
from nbclient.exceptions import DeadKernelError
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines

ENGINE = "mamc-watchdog"
# nbclient's own log lines ("Kernel died while waiting…") would only repeat what the raised error says.
QUIET = logging.getLogger("mamc.watchdog.client")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


@dataclass(frozen=True)
class Limits:
    """Seconds without a sign of life before a pending cell is stopped (0 turns a check off)."""

    idle: float = 600.0
    reply: float = 60.0
    silence: float = 0.0
    poll: float = 1.0


class Hang(RuntimeError):
    """The watchdog stopped a cell; `cell_index` is its position in the executed notebook."""

    def __init__(self, reason: str, cell_index: int):
        super().__init__(reason)
        self.cell_index = cell_index


class DeadKernel(RuntimeError):
    """The kernel died while a cell ran (out of memory, a crash, `os._exit`)."""

    def __init__(self, cell_index: int):
        super().__init__("the kernel died")
        self.cell_index = cell_index


def _cpu_seconds(pid: int) -> float:
    """CPU time of a process and all its descendants (DataLoader workers, subprocesses)."""
    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _kill_tree(pid: int) -> None:
    try:
        root = psutil.Process(pid)
        for p in [*root.children(recursive=True), root]:
            p.kill()
    except psutil.NoSuchProcess:
        pass


class Watch:
    """What the watchdog thread knows about the cell in flight, fed by the client."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.lock = threading.Lock()
        self.cell_index: int | None = None
        self.last_message = self.last_activity = time.monotonic()
        self.idle_at: float | None = None
        self.reason: str | None = None

    def start_cell(self, index: int) -> None:
        with self.lock:
            self.cell_index, self.idle_at = index, None
            self.last_message = self.last_activity = time.monotonic()

    def end_cell(self) -> None:
        with self.lock:
            self.cell_index = None

    def heard(self, msg: dict) -> None:
        with self.lock:
            self.last_message = self.last_activity = time.monotonic()
            if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                self.idle_at = self.last_message

    def verdict(self, now: float) -> str | None:
        """Why the pending cell counts as hung now, or None."""
        lim = self.limits
        if self.idle_at is not None and lim.reply and now - self.idle_at > lim.reply:
            return f"the kernel finished the cell but its reply did not come within {lim.reply:g} s"
        if lim.idle and now - self.last_activity > lim.idle:
            return f"the kernel used no CPU and sent no message for {lim.idle:g} s"
        if lim.silence and now - self.last_message > lim.silence:
            return f"the kernel sent no message for {lim.silence:g} s"
        return None


def _watch_loop(client: "WatchedClient", stop: threading.Event) -> None:
    watch, cpu = client.watch, None
    while not stop.wait(watch.limits.poll):
        pid = getattr(getattr(client.km, "provisioner", None), "pid", None)
        if pid is None:
            continue
        used = _cpu_seconds(pid)
        with watch.lock:
            if cpu is not None and used - cpu > 0.05 * watch.limits.poll:
                watch.last_activity = time.monotonic()
            cpu = used
            if watch.cell_index is None or watch.reason:
                continue
            watch.reason = watch.verdict(time.monotonic())
        if watch.reason:
            _kill_tree(pid)


class WatchedClient(PapermillNotebookClient):
    """papermill's client, reporting every message of the running cell and the cell boundaries to a `Watch`."""

    def __init__(self, nb_man, watch: Watch, **kwargs):
        super().__init__(nb_man, on_cell_execute=lambda cell, cell_index: watch.start_cell(cell_index),
                         on_cell_executed=lambda **_: watch.end_cell(), **kwargs)
        self.watch = watch

    def process_message(self, msg, cell, cell_index):
        self.watch.heard(msg)
        return super().process_message(msg, cell, cell_index)

    def execute(self, **kwargs):
        stop = threading.Event()
        thread = threading.Thread(target=_watch_loop, args=(self, stop), daemon=True, name="mamc-watchdog")
        thread.start()
        try:
            return super().execute(**kwargs)
        except DeadKernelError:
            index = self.watch.cell_index if self.watch.cell_index is not None else -1
            if self.watch.reason:
                raise Hang(self.watch.reason, index) from None
            raise DeadKernel(index) from None
        finally:
            stop.set()
            thread.join()


class WatchdogEngine(NBClientEngine):
    """papermill's nbclient engine with `WatchedClient`; limits come in the `watchdog` keyword."""

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None, stderr_file=None,
                                 start_timeout=60, execution_timeout=None, watchdog: Limits = Limits(), **kwargs):
        kwargs.pop("input_path", None)
        client = WatchedClient(nb_man, Watch(watchdog), timeout=execution_timeout, startup_timeout=start_timeout,
                               kernel_name=kernel_name, log=QUIET, log_output=log_output,
                               stdout_file=stdout_file, stderr_file=stderr_file, **kwargs)
        return client.execute()


papermill_engines.register(ENGINE, WatchdogEngine)
