"""Preemption: a cluster that takes the machine back sends SIGTERM (Slurm, Kubernetes), or SIGUSR1 when asked to
warn ahead (`sbatch --signal=USR1@120`). Noted instead of obeyed at once, the signal makes training commit its
checkpoint at the next step boundary and the process exit with `PREEMPTED` (75, EX_TEMPFAIL: try again), so that
the requeued job, the same command, resumes bit for bit."""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

PREEMPTED = 75
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
_asked = False


class Preempted(Exception):
    """Training stopped at a step boundary on a preemption signal, its checkpoint committed."""


def _note(signum: int, frame) -> None:
    global _asked
    _asked = True


@contextmanager
def deferred() -> Iterator[None]:
    """Within: SIGTERM and SIGUSR1 are noted (`asked`) instead of ending the process, so that training stops at
    a step boundary; outside, they act as before (a caption or ingest job ends at once, its work atomic).
    Python allows handlers in the main thread only; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.signal(sig, _note) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def asked() -> bool:
    """Whether a preemption signal has arrived."""
    return _asked
