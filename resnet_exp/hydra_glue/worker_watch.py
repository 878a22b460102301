"""A launcher's worker ends with its parent.

joblib's loky workers outlive a sweep's parent that was killed: they go on training (and idle ones
stay for minutes, ~1 GB each), and a re-run of the sweep trains beside them in the same folders.
The entry point records its host and pid in ``RESNET_EXP_SWEEP_PID`` (inherited by the workers);
a worker on the same host watches it from a daemon thread and, once it is gone, stops like a
SIGTERM would: the running job saves its checkpoint at the next step and records ``terminated``
(so the same command resumes it), an idle worker just ends. If the job does not end within the
grace period, the worker exits.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

PARENT_ENV = "RESNET_EXP_SWEEP_PID"
POLL_S = 1.0
GRACE_S = 60.0
_started = False
_sweep: str | None = None  # the sweep folder this process launched
_orphaned = threading.Event()


def mark_parent(sweep_dir: str | None = None) -> None:
    """In the launching process: who the workers it starts must outlive no longer than.
    ``sweep_dir``: the sweep folder this process launches (None for a single run)."""
    global _sweep
    os.environ[PARENT_ENV] = f"{socket.gethostname()}:{os.getpid()}"
    _sweep = sweep_dir


def launched_sweep() -> str | None:
    """The sweep folder this process launched (its jobs may be training in workers), or None."""
    return _sweep


def record_killed_jobs(sweep_dir: Path, status: str, why: str) -> int:
    """After the launcher killed its workers (joblib does on Ctrl-C): each job of ``sweep_dir``
    still recorded ``running`` by a process of this host that is gone gets ``status`` (its last
    checkpoint on disk is where the same command resumes it). Returns how many."""
    from resnet_exp.tracking.record import RunRecord

    fixed = 0
    for path in Path(sweep_dir).glob("*/summary.json"):
        record = RunRecord(path.parent)
        try:
            summary = record.read_summary()
        except Exception:  # a torn or foreign file: status and the report say what it is
            continue
        if summary is None or summary.status != "running" or summary.host != socket.gethostname():
            continue
        if summary.pid is None or _alive(int(summary.pid)):
            continue
        summary.status, summary.stopped_by = status, why
        record.write_summary(summary)
        fixed += 1
    return fixed


def watch_parent() -> None:
    """In a launcher's worker (a no-op in the launching process, and after the first call)."""
    global _started
    host, _, pid = os.environ.get(PARENT_ENV, "").rpartition(":")
    parent = int(pid) if pid.isdigit() else 0
    # Only a worker on the parent's machine: a SLURM job inherits the variable on another node.
    if _started or parent in (0, os.getpid()) or host != socket.gethostname():
        return
    _started = True
    args = (parent, os.getppid())
    threading.Thread(target=_watch, args=args, name="parent-watch", daemon=True).start()


def exit_if_orphaned() -> None:
    """After a job: a worker whose sweep process is gone ends now instead of waiting for work."""
    if _orphaned.is_set():
        import logging

        logging.shutdown()
        os._exit(128 + signal.SIGTERM)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch(parent: int, ppid: int) -> None:
    while _alive(parent) and os.getppid() == ppid:  # a dead parent's children are re-parented
        time.sleep(POLL_S)
    _orphaned.set()
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(GRACE_S)
    os._exit(128 + signal.SIGTERM)
