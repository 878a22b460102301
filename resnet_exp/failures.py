"""What an exception that escaped a run means to the user: a known cause is one paragraph; an
unknown one keeps its traceback in the run's log file and gets one line pointing there."""

from __future__ import annotations

import errno
import logging
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omegaconf import DictConfig

# The file system refused a write: full, over quota, read-only, no permission.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})
_OOM_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory")


def known_cause(error: BaseException, cfg: DictConfig) -> str | None:
    """One paragraph for a failure whose cause we know (memory, disk), else None."""
    seen: BaseException | None = error
    while seen is not None:
        text = str(seen).lower()
        if isinstance(seen, MemoryError) or (
            isinstance(seen, RuntimeError) and any(m in text for m in _OOM_MARKERS)
        ):
            return _out_of_memory(seen, cfg)
        if isinstance(seen, OSError) and seen.errno in DISK_ERRNOS:
            where = f" {str(seen.filename)!r}" if seen.filename else ""
            return (
                f"cannot write{where}: {seen.strerror or seen}. The run's files (log, metrics, "
                "summary, checkpoints) must fit on a writable disk; free some space or choose "
                "another hydra.run.dir, then run the same command again: it resumes from the last "
                "checkpoint."
            )
        seen = seen.__cause__ or seen.__context__
    return None


def _out_of_memory(error: BaseException, cfg: DictConfig) -> str:
    d = cfg.data
    side = d.resize or d.image_size
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (
        f"out of memory ({first[:200]}) with images of {side}x{side} "
        f"(data.resize={d.resize}), data.batch_size={d.batch_size}, "
        f"data.eval_batch_size={d.eval_batch_size}, model.depth={cfg.model.depth} on "
        f"trainer.device={cfg.trainer.device}. The whole training split is kept in memory at that "
        "size: lower data.resize (null keeps the dataset's own size), data.batch_size, or "
        "data.train_subset, or use a device with more memory."
    )


def log_traceback(error: BaseException) -> Path | None:
    """Write ``error``'s traceback to the log files only (not the console); returns the first."""
    text = "".join(traceback.format_exception(error))
    written = None
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                handler.stream.write(f"unexpected error, traceback:\n{text}")
                handler.flush()
            finally:
                handler.release()
            written = written or Path(handler.baseFilename)
    return written
