"""Runs that share a machine share its cores (``trainer.num_threads=null``).

Every run takes every core by default, so two runs started side by side fight over them: on a
2-core machine two default runs do ~205 img/s each where one alone does ~1,250. Here each run
with ``trainer.num_threads=null`` holds a *lease*: a file in a per-user folder on this host,
``flock``-ed by the run for as long as it lives. The kernel drops the lock when the process ends,
however it ends (SIGKILL included), so a lease whose file no reader can lock is a live run, and a
file that a reader *can* lock was left by a dead run and is deleted on sight: a killed run leaves
nothing that counts. A run's fair share is its part of the cores among the live leases (the
older leases get the remainder), and each run looks again every few seconds between training
steps (:meth:`CoreLease.refresh`), so the runs already going give up threads when a new one starts
and take them back when it ends.

No torch here: the caller passes the function that sets the thread count.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("resnet_exp")

SUFFIX = ".lease"
#: Seconds between two looks at the leases while training (a look costs well under a millisecond).
REFRESH_S = 2.0


def wanted(num_threads: int | None, slurm_cpus: str | None, local_processes: int) -> bool:
    """Whether a run shares the cores through a lease: ``trainer.num_threads=null``, not a SLURM job
    (SLURM gave it its cores) and not one of torchrun's processes (they split the cores already)."""
    return num_threads is None and not slurm_cpus and local_processes <= 1


def lease_dir() -> Path:
    """This user's lease folder on this host: under ``$XDG_RUNTIME_DIR`` when the session has one
    (per user, cleared at logout), else the temp folder."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"resnet_exp-cores-{os.getuid()}"


def fair_share(cores: int, runs: int, position: int) -> int:
    """Threads for the run at ``position`` (0 = oldest lease) of ``runs`` live runs on ``cores``:
    an equal part, the remainder to the oldest, never fewer than one."""
    runs = max(runs, 1)
    base, extra = divmod(max(cores, 1), runs)
    return max(1, base + (1 if position < extra else 0))


def live_leases(directory: Path, own: Path | None = None) -> list[Path]:
    """The leases held by live runs, oldest first; files left by dead runs are deleted."""
    try:
        names = sorted(p for p in directory.iterdir() if p.name.endswith(SUFFIX))
    except FileNotFoundError:
        return []
    live = []
    for path in names:
        if path == own or _held(path):
            live.append(path)
    return live


def _held(path: Path) -> bool:
    """Whether a live process holds ``path``'s lock; a file nobody holds is removed."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:  # its run is gone: the kernel released the lock when the process ended
        path.unlink(missing_ok=True)
        return False
    finally:
        os.close(fd)


class CoreLease:
    """This process's lease; ``threads`` is its current fair share of ``cores`` (capped)."""

    _current: CoreLease | None = None  # one per process: a sequential sweep's next job replaces it

    def __init__(self, directory: Path, cores: int, cap: int | None = None) -> None:
        self.directory, self.cores, self.cap = directory, cores, cap or cores
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Named by start time, so sorting the names orders the runs by age. Locked before it gets
        # its .lease name: a reader never sees this lease unlocked and takes it for a dead run's.
        stamp = f"{time.time_ns():020d}-{os.getpid()}"
        fd, tmp = tempfile.mkstemp(prefix=f".{stamp}-", dir=directory)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"pid {os.getpid()} cores {cores}\n".encode())
        self.path = directory / f"{stamp}{SUFFIX}"
        os.rename(tmp, self.path)
        self._fd: int | None = fd
        self.runs, self.threads = self._share()
        self._next_look = time.monotonic() + REFRESH_S

    def _share(self) -> tuple[int, int]:
        live = live_leases(self.directory, own=self.path)
        position = live.index(self.path) if self.path in live else 0
        return len(live), min(self.cap, fair_share(self.cores, len(live), position))

    def reason(self) -> str:
        others = self.runs - 1
        who = "no other resnet_exp run" if others == 0 else f"{others} other resnet_exp run"
        who += "s" if others > 1 else ""
        return (
            f"trainer.num_threads=null: {who} of this user on this machine, so this run takes "
            f"{self.threads} of the {self.cores} cores (leases in {self.directory})"
        )

    def refresh(self, now: float | None = None) -> int | None:
        """Between training steps: the new share when the number of live runs changed since the
        last look (at most one look every REFRESH_S seconds), else None."""
        now = time.monotonic() if now is None else now
        if now < self._next_look or self._fd is None:
            return None
        self._next_look = now + REFRESH_S
        runs, threads = self._share()
        if threads == self.threads:
            self.runs = runs
            return None
        self.runs, self.threads = runs, threads
        return threads

    def release(self) -> None:
        """Give the cores back now (the process's end would too)."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)  # closing drops the lock
        self._fd = None


def take(
    cores: int, cap: int | None, set_threads: Callable[[int], None], directory: Path | None = None
) -> CoreLease:
    """Take this process's lease (releasing one an earlier job of the same process held), set the
    thread count to its share and log why."""
    if CoreLease._current is not None:
        CoreLease._current.release()
    lease = CoreLease(directory or lease_dir(), cores, cap)
    CoreLease._current = lease
    set_threads(lease.threads)
    log.info("torch intra-op threads: %d (%s)", lease.threads, lease.reason())
    return lease


def keep_fair(lease: CoreLease, set_threads: Callable[[int], None]) -> Callable[[], None]:
    """The between-steps hook: follow the share as runs start and end."""

    def look() -> None:
        threads = lease.refresh()
        if threads is not None:
            set_threads(threads)
            log.info("torch intra-op threads now %d (%s)", threads, lease.reason())

    return look


@atexit.register
def _release_at_exit() -> None:
    if CoreLease._current is not None:
        CoreLease._current.release()
