"""One writer per run or sweep folder; and the one ``flock`` helper (GPU slots use it too).

Two processes writing one folder append every metrics row twice and resume from each other's
checkpoints. A writer holds ``fcntl.flock`` on ``<folder>/.writer.lock`` (which names its host
and pid); the kernel drops it when the holder's file closes, however it ends.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import stat
import time
from pathlib import Path

from resnet_exp.errors import UserError

LOCK_NAME = ".writer.lock"
log = logging.getLogger("resnet_exp")


def try_flock(
    path: Path, *, shared: bool = False, create: bool = True, mode: int = 0o644
) -> int | None:
    """An open descriptor of ``path`` holding its ``flock`` (shared or exclusive), or None when
    another process holds it. A lock file that is not a regular file (a link, a FIFO, a
    directory) is an OSError, never followed or waited on."""
    flags = (os.O_RDWR | os.O_CREAT if create else os.O_RDONLY) | os.O_NOFOLLOW | os.O_NONBLOCK
    fd = os.open(path, flags, mode)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


class FolderBusy(UserError):
    """Another process writes this folder now."""


class FolderLock:
    """``flock`` on the folder's lock file, held until :meth:`release` or the process ends."""

    def __init__(self, folder: Path, what: str) -> None:
        self.folder, self.what = Path(folder), what
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        """Take the lock or raise :class:`FolderBusy` naming the holder (never waits)."""
        path = self.folder / LOCK_NAME
        try:
            fd = try_flock(path)
        except OSError as error:  # an odd lock file must not stop the run: it trains unguarded
            log.warning("cannot lock %s (%s); running without the one-writer check", path, error)
            return self
        if fd is None:
            holder = path.read_bytes()[:300].decode("utf-8", "replace").strip() or "another process"
            raise FolderBusy(
                f"{self.what} {str(self.folder)!r} is in use by {holder}: one folder has one "
                "writer at a time. Wait for that process to end (python -m resnet_exp.status "
                "<folder> shows its progress) or stop it, then run the same command again to "
                "resume; or choose another folder."
            )
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        text = f"pid {os.getpid()} on host {socket.gethostname()} (since {started})\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def in_use(folder: Path) -> bool:
    """Whether a live process holds ``folder``'s lock now (a killed holder's lock is gone)."""
    try:
        fd = try_flock(Path(folder) / LOCK_NAME, shared=True, create=False)
    except OSError:
        return False
    if fd is not None:
        os.close(fd)
    return fd is None
