"""Preemption: a cluster that takes the machine back sends SIGTERM (Slurm, Kubernetes), or SIGUSR1 when asked to
warn ahead (`sbatch --signal=USR1@120`). Noted instead of obeyed at once, the signal makes training commit its
checkpoint at the next step boundary and the process exit with `PREEMPTED` (75, EX_TEMPFAIL: try again), so that
the requeued job, the same command, resumes bit for bit."""
from __future__ import annotations

import signal
import threading

PREEMPTED = 75
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
_asked = False


class Preempted(Exception):
    """Training stopped at a step boundary on a preemption signal, its checkpoint committed."""


def _note(signum: int, frame) -> None:
    global _asked
    _asked = True


def catch_preemption() -> None:
    """Note SIGTERM and SIGUSR1 from now on (Python allows handlers in the main thread only; elsewhere nothing
    changes)."""
    if threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            signal.signal(sig, _note)


def asked() -> bool:
    """Whether a preemption signal has arrived."""
    return _asked
