"""Resume policy: which checkpoint ``trainer.resume`` continues from, and whether it may.

``auto`` continues ``last.pt`` (or the spare ``last.prev.pt``) only if the same job wrote it (its
identity is in the checkpoint's meta); an explicit path is continued even from another
configuration (with a warning); ``never`` starts over.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resnet_exp.errors import UserError
from resnet_exp.tracking.identity import key_difference, same_key
from resnet_exp.tracking.record import (
    BEST_PT,
    LAST_PT,
    STOPPED,
    RunRecord,
    RunSummary,
    previous_path,
)

log = logging.getLogger("resnet_exp")


@dataclass
class Start:
    """How this attempt starts: the metrics rows kept and what the run record should say."""

    rows: list[dict]
    attempts: int
    resumed_from: dict | None = None
    previous: RunSummary = field(default_factory=RunSummary)  # the earlier attempt's record


def start_or_resume(
    trainer: Any, record: RunRecord, path: Path | None, state: dict | None, *, key: str,
    setting: str,
) -> Start:  # fmt: skip
    """Load the checkpoint ``trainer.resume`` (``setting``) chooses into ``trainer``, or start
    fresh; ``key`` is this run's identity."""
    previous = record.read_summary() or RunSummary()
    if path is None and setting == "auto" and previous.status in STOPPED and previous.epochs:
        raise UserError(
            f"{record.run_dir} records a run {previous.status} after epoch {previous.epochs}, but "
            f"its checkpoints ({record.last_checkpoint} and its spare) are gone (deleted or "
            "moved?); it is not started over silently. Put them back and run the same command "
            "to resume, or start this run over with trainer.resume=never."
        )
    if path is None:
        if record.metrics_path.exists():  # an attempt that died before its first checkpoint
            record.truncate_metrics(0)
        return Start(rows=[], attempts=1, previous=previous)
    if state is None:  # DDP ranks > 0 load the file rank 0 chose
        from resnet_exp.training.checkpoint import load_checkpoint

        state = load_checkpoint(path, map_location=trainer.device)
    saved = (state.get("meta") or {}).get("config")
    _check_same_config(path, saved, key, str(setting))
    from resnet_exp.training.checkpoint_check import check_contents, check_finished_has_rows

    own, theirs = trainer.model.state_dict(), state.get("model") or {}
    fits = set(own) == set(theirs) and all(own[k].shape == theirs[k].shape for k in own)
    if not fits:  # another network's weights: say that, before any count of it is judged
        trainer.resume(path, state)  # raises CorruptCheckpoint naming the misfit
    check_contents(path, state, trainer.data.steps_per_epoch, same_config=same_key(saved, key))
    rows = trainer.resume(path, state, earlier_wall_s=previous.wall_time_s or 0.0)
    check_finished_has_rows(path, trainer.epoch, trainer.settings.epochs, rows)
    _quarantine_skipped(trainer, path, str(setting))
    _repair_best(trainer, path, state)
    resumed_from = {
        "path": str(path),
        "epoch": trainer.epoch,
        "step": trainer.step,
        "step_in_epoch": trainer.step_in_epoch,
    }
    if trainer.epoch >= trainer.settings.epochs:
        log.info("checkpoint %s is at the final epoch %d: nothing to train", path, trainer.epoch)
    return Start(rows, (previous.attempts or 1) + 1, resumed_from, previous)


def _quarantine_skipped(trainer: Any, path: Path, setting: str) -> None:
    """Resumed from the spare because ``last.pt`` is damaged: move that file aside now, so the
    next save cannot rotate it into the spare (rank 0 only; it owns the files)."""
    from resnet_exp.training.checkpoint import quarantine

    last = path.with_name(LAST_PT)
    if setting != "auto" or path != previous_path(last) or not os.path.lexists(last):
        return
    if trainer.dist is not None and not trainer.dist.is_main:
        return
    moved = quarantine(last)
    log.warning("the damaged %s is kept as %s (never rotated into the spare)", last, moved)


def _repair_best(trainer: Any, path: Path, state: dict) -> None:
    """``best.pt`` refused (a full disk) after ``last.pt`` recorded its epoch as the best: rewritten
    from ``last.pt``, which holds those weights, so summary.json, best.pt and last.pt agree."""
    from resnet_exp.training.checkpoint import CorruptCheckpoint, load_checkpoint, save_checkpoint

    best, target = state.get("best") or {}, path.with_name(BEST_PT)
    main = trainer.dist is None or trainer.dist.is_main  # an epoch-end checkpoint of the best
    if best.get("epoch") != state["epoch"] or state.get("step_in_epoch") or not main:
        return
    try:
        if load_checkpoint(target).get("epoch") == best["epoch"]:
            return
    except CorruptCheckpoint:
        pass  # missing, damaged or another epoch's: rewritten below
    save_checkpoint(target, state)
    log.warning("%s did not hold the best epoch %s (a failed write?): rewritten from %s",
                target, best["epoch"], path)  # fmt: skip


def _check_same_config(path: Path, saved: str | None, key: str, setting: str) -> None:
    if saved is None or same_key(saved, key):
        return
    diff = key_difference(saved, key)
    message = f"checkpoint {str(path)!r} was written by a different configuration ({diff})."
    if setting == "auto":
        raise UserError(
            f"{message} trainer.resume=auto only continues the same run. Use a new "
            "hydra.run.dir for a new run, trainer.resume=never to start over in this folder "
            "(its checkpoints and metrics are replaced), or trainer.resume=<that path> to "
            "continue from it anyway."
        )
    log.warning("%s Continuing from it as trainer.resume asks.", message)


def pick(found: dict, setting: str, last: Path, device: Any) -> Path | None:
    """Rank 0's choice of checkpoint (auto: last.pt, falling back to last.prev.pt when last.pt is
    damaged; an explicit path must load as is; never: none); the loaded state is kept in
    ``found["state"]`` so the file is read once."""
    from resnet_exp.training.checkpoint import load_checkpoint, load_latest  # torch: only here

    path = Path(os.path.expanduser(setting))
    chosen = (None if setting == "never" else load_latest(last, device) if setting == "auto"
              else (path, load_checkpoint(path, device)))  # fmt: skip
    found["state"] = chosen[1] if chosen else None
    return chosen[0] if chosen else None
