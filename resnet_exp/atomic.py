"""The one way this package replaces a file: write beside it, fsync, rename over it.

A kill, a full disk or a concurrent reader never sees half a file; two writers racing (one report
builder per finishing job of a parallel sweep) each rename a complete file and the last one wins.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: Path, before_replace: Callable[[], None] | None = None) -> Iterator[Path]:
    """A fresh temp path beside ``path``; what the block writes there replaces ``path`` when the
    block ends without an exception (else the temp file is removed and ``path`` is untouched).
    ``before_replace`` runs once the new bytes are safely on disk, just before the rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode
        os.close(fd)
        yield tmp
        _fsync(tmp)
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
        _fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)  # only still there if something failed


def atomic_write(path: Path, data: bytes, before_replace: Callable[[], None] | None = None) -> Path:
    """Replace ``path`` with ``data`` atomically (see :func:`atomic_path`); returns ``path``."""
    with atomic_path(path, before_replace) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def remove_leftovers(folder: Path) -> list[Path]:
    """Delete the temp files a killed writer left in ``folder`` (``.<name>.<random>.tmp``, made
    by :func:`atomic_path`). Only for a folder this process alone writes (it holds its lock)."""
    removed = []
    for path in Path(folder).glob(".*.tmp"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _fsync(target: Path) -> None:
    """Flush a file's bytes, or make a rename durable (a folder); harmless where not possible."""
    try:
        fd = os.open(target, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
