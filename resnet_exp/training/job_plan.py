"""What a sweep job does with its folder when the sweep command runs again: skip, resume or start.

The earlier attempt is found by the job's identity from two small files (no torch, no data):
completed returns its result, diverged stays diverged, partial or failed resumes, and a folder of
another configuration is refused.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resnet_exp.errors import UserError
from resnet_exp.tracking.identity import identity_key, key_difference, same_key
from resnet_exp.tracking.record import (
    COMPLETED,
    DIVERGED,
    FAILED,
    RUNNING,
    RunRecord,
    RunSummary,
    read_metrics_file,
)

log = logging.getLogger("resnet_exp")

SKIP, RESUME, START = "skip", "resume", "start"


@dataclass
class JobPlan:
    action: str  # skip | resume | start
    reason: str  # said to the user: "completed", "resume after epoch 2 of 4 (failed)", ...
    summary: dict[str, Any] | None = None  # the stored record as on disk (a skipped job's result)


class ForeignJobFolder(UserError):
    """The job's folder holds a run of another configuration."""


def plan_job(run_dir: Path, key: str, sweep_dir: Path | None = None) -> JobPlan:
    """Decide from ``run_dir``'s summary.json and checkpoints; ``key`` is this job's config key
    (``summary.json`` stores the key it was written under)."""
    record = RunRecord(run_dir)
    found = record.read_summary()
    summary = found.to_json() if found else None
    status = found.status if found else ""
    stored = found.config_key if found else None
    if stored is not None and not same_key(stored, key):
        raise ForeignJobFolder(_foreign_message(record.run_dir, stored, key, sweep_dir))
    if status in (COMPLETED, DIVERGED) and same_key(stored, key):
        return JobPlan(SKIP, status, summary)
    if any(os.path.lexists(path) for path in record.resumable_checkpoints()):
        done = _epochs_done(record)
        planned = found.epochs_planned if found else None
        of = f" of {planned}" if planned else ""
        was = f" ({status})" if status and status != RUNNING else ""
        return JobPlan(RESUME, f"resume after epoch {done}{of}{was}", summary)
    if status == FAILED:
        return JobPlan(START, "start again (failed before its first checkpoint)", summary)
    return JobPlan(START, "start", summary)


def stored_result(
    config: dict[str, Any], run_dir: Path, name: str, sweep_dir: Path | None = None
) -> RunSummary | None:
    """A re-run sweep's cheap check, before any data is read: the stored record of a job that
    completed (or diverged) in its folder under the same configuration, else None (train: start
    or resume). A folder of another configuration is refused and left as it is."""
    try:
        plan = plan_job(run_dir, identity_key(config), sweep_dir)
    except ForeignJobFolder as error:
        log.error("%s", error)
        raise
    if plan.action != SKIP:
        if plan.reason != "start":
            log.info("job %s: %s", name, plan.reason)
        return None
    log.info("job %s %s earlier in %s: skipped, its record is kept", name, plan.reason, run_dir)
    return RunSummary.from_json(plan.summary)


def finished_in(held: dict[str, Path], key: str | None) -> tuple[Path, str] | None:
    """Where a sweep's folders (``held``: identity -> folder, ``identity.index``) already hold
    this identity's finished run (completed or diverged), and its status; else None."""
    folder = held.get(key) if key else None
    found = RunRecord(folder).read_summary() if folder else None
    return (folder, found.status) if found and found.status in (COMPLETED, DIVERGED) else None


def _epochs_done(record: RunRecord) -> int:
    try:
        return read_metrics_file(record.metrics_path).epochs_done()
    except OSError:
        return 0


def _foreign_message(run_dir: Path, stored: str, key: str, sweep_dir: Path | None) -> str:
    diff = key_difference(stored, key)
    where = f"sweep folder {str(sweep_dir)!r}" if sweep_dir else "its sweep folder"
    return (
        f"job folder {str(run_dir)!r} holds a run of another configuration ({diff or 'unknown'}); "
        f"a job only continues a run of its own configuration (a config file or a preset changed "
        f"since that run, or the folder was named by hand). To keep both, run "
        f"the sweep in a new folder: leave out hydra.sweep.dir (a new timestamped folder) or name "
        f"a new one, e.g. hydra.sweep.dir=outputs/multirun/<new name>. To replace that job's "
        f"result, delete {str(run_dir)!r} and run the same command again. Nothing in {where} "
        f"was changed."
    )
