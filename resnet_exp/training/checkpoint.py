"""Checkpoints: everything a bit-identical continuation needs, written atomically, loaded safely;
the spare ``last.prev.pt`` covers damage from outside (a full disk, a copy cut short).
"""

from __future__ import annotations

import io
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

from resnet_exp.atomic import atomic_write
from resnet_exp.errors import DISK_ERRNOS, UserError, os_limit
from resnet_exp.tracking.record import CHECKPOINTS, LAST_PT, previous_path

log = logging.getLogger("resnet_exp")


class CorruptCheckpoint(UserError):
    """A checkpoint that is truncated, not a checkpoint, or would need to run code to load."""


class CheckpointWriteError(UserError):
    """The disk refused a checkpoint (full, quota, read-only); the previous one is untouched."""


def save_checkpoint(path: Path, state: dict[str, Any], keep_previous: bool = False) -> None:
    """Serialise in memory, then write via temp file + fsync + rename: a kill never tears it.

    With ``keep_previous`` the file being replaced is first renamed to :func:`previous_path`, after
    the new bytes are on disk; a kill between the two renames leaves only the spare, which
    :func:`load_latest` also looks at.
    """
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(state, buffer)

    def rotate() -> None:  # never a directory or a FIFO into the spare: those are moved aside
        if path.is_file():
            os.replace(path, previous_path(path))
        elif os.path.lexists(path):
            quarantine(path)

    try:
        atomic_write(path, buffer.getvalue(), before_replace=rotate if keep_previous else None)
    except OSError as error:
        if error.errno not in DISK_ERRNOS:
            raise
        last = path.with_name(LAST_PT)
        kept = [p for p in (last, previous_path(last)) if p.is_file()]
        raise CheckpointWriteError(
            f"cannot write the checkpoint {str(path)!r}: {os_limit(error)}; it needs "
            f"{buffer.getbuffer().nbytes / 1e6:.1f} MB. "
            + (f"The run's checkpoint {str(kept[0])!r} is intact. " if kept else "")
            + "Lift the limit (free some space, raise the ulimit, make the folder writable) and "
            "run the same command again: it "
            + ("resumes from there." if kept else "starts the run again.")
        ) from None


def quarantine(path: Path) -> Path:
    """Move a damaged checkpoint out of the rotation (``last.damaged-<UTC time>.pt``), so the
    next save can never rotate it into the spare ``last.prev.pt``; it is kept for inspection.
    Called once the run has resumed from the spare (:mod:`resnet_exp.training.resume`)."""
    path = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.stem}.damaged-{stamp}{path.suffix}")
    n = 2
    while target.exists():
        target = path.with_name(f"{path.stem}.damaged-{stamp}-{n}{path.suffix}")
        n += 1
    os.replace(path, target)
    return target


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with ``weights_only=True``, so a crafted pickle cannot execute anything."""
    path = Path(path)
    if not path.is_file():  # stat only: a FIFO or a device is never opened (it could block)
        what = "a directory, FIFO or link" if os.path.lexists(path) else "nothing"
        raise CorruptCheckpoint(
            f"checkpoint {str(path)!r}: {what} is there, not a file. Give the path of a "
            f"{CHECKPOINTS}/{LAST_PT} written by resnet_exp, or use trainer.resume=auto|never."
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated zip, random bytes, or a pickle that calls code
        raise CorruptCheckpoint(
            f"checkpoint {str(path)!r} cannot be loaded safely ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'no detail'}). It is truncated, "
            "corrupt, or not a resnet_exp checkpoint; it was not executed and nothing was changed. "
            "Delete or move it to start over, or run with trainer.resume=never."
        ) from None
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise CorruptCheckpoint(
            f"checkpoint {str(path)!r} is not a resnet_exp training checkpoint (no model/epoch "
            "entries). Use trainer.resume=never, or point trainer.resume at "
            f"{CHECKPOINTS}/{LAST_PT}."
        )
    return state


def load_latest(
    last: Path, map_location: str | torch.device = "cpu"
) -> tuple[Path, dict[str, Any]] | None:
    """``trainer.resume=auto``: ``last.pt``, else the spare ``last.prev.pt``; None if neither. A
    damaged one is logged and skipped; when every one is damaged the error names each and why."""
    candidates = [p for p in (Path(last), previous_path(last)) if os.path.lexists(p)]
    problems: list[str] = []
    for path in candidates:
        try:
            state = load_checkpoint(path, map_location=map_location)
        except CorruptCheckpoint as error:
            problems.append(str(error))
            log.warning("not resuming from %s: %s", path, error)
            continue
        if problems:
            log.warning(
                "resuming from the previous checkpoint %s (epoch %s, step %s) because %s is "
                "damaged; the steps after it are trained again.",
                path,
                state.get("epoch"),
                state.get("step"),
                candidates[0],
            )
        return path, state
    if problems:
        raise CorruptCheckpoint(
            f"trainer.resume=auto found no loadable checkpoint in {str(Path(last).parent)!r}: "
            + " ".join(problems)
            + " To start this run over in the same folder use trainer.resume=never, or pick a "
            "new hydra.run.dir."
        )
    return None
