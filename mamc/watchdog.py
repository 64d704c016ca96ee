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

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from queue import Empty

import psutil
from nbclient.client import timestamp
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import ensure_async
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines

ENGINE = "mamc-watchdog"
SHELL_POLL = 1.0
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


def _watch_loop(client: WatchedClient, stop: threading.Event) -> None:
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

    async def _async_poll_for_reply(self, msg_id, cell, timeout, task_poll_output_msg, task_poll_kernel_alive):
        """nbclient's wait for a cell's reply, polling the shell channel every `SHELL_POLL` seconds instead of
        one unbounded wait: with widgets in a cell that wait sometimes never wakes although the reply has
        arrived (nbclient #312; 3 of 20 runs of a widget cell under load here), and the next poll finds it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=SHELL_POLL))
            except Empty:
                if deadline is not None and time.monotonic() > deadline:
                    task_poll_kernel_alive.cancel()
                    await self._async_check_alive()
                    await self._async_handle_timeout(timeout, cell)
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if self.record_timing:
                cell["metadata"]["execution"]["shell.execute_reply"] = timestamp(msg)
            try:
                await asyncio.wait_for(task_poll_output_msg, self.iopub_timeout)
            except (asyncio.TimeoutError, Empty):
                if self.raise_on_iopub_timeout:
                    task_poll_kernel_alive.cancel()
                    raise CellTimeoutError.error_from_timeout_and_cell(
                        "Timeout waiting for IOPub output", self.iopub_timeout, cell) from None
            task_poll_kernel_alive.cancel()
            return msg

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
                                 start_timeout=60, execution_timeout=None, watchdog: Limits | None = None, **kwargs):
        kwargs.pop("input_path", None)
        client = WatchedClient(nb_man, Watch(watchdog or Limits()), timeout=execution_timeout, startup_timeout=start_timeout,
                               kernel_name=kernel_name, log=QUIET, log_output=log_output,
                               stdout_file=stdout_file, stderr_file=stderr_file, **kwargs)
        return client.execute()


papermill_engines.register(ENGINE, WatchdogEngine)
