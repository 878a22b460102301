"""The Optuna sweeper's pruning: a trial's job is an ordinary run in any launcher's process, so
its epochs are read from its folder and the pruner's verdict is a file the job looks for."""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path
from typing import Any

import optuna

from resnet_exp.atomic import atomic_write
from resnet_exp.tracking.record import (
    METRICS_JSONL,
    PRUNED,
    RUNNING,
    SUMMARY_JSON,
    TRAIN_ERR,
    VAL_ERR,
    RunRecord,
    read_metrics_file,
)

log = logging.getLogger("resnet_exp")
POLL_S = 1.0  # how often a trial's folder is read for the epochs it ended


def so_far(rows: list[dict[str, Any]], objective: str | None = None) -> list[float | None]:
    """Each epoch row's objective so far: ``objective`` (default: the error the loop picks its best
    by) at the epoch of least validation error up to it, as the job's own result."""
    best: dict[str, Any] = {}
    values = []
    for row in rows:
        key = VAL_ERR if VAL_ERR in row else TRAIN_ERR  # as the loop picks its best
        if key in row and row[key] < best.get(key, math.inf):
            best = row
        values.append(best.get(objective or key))
    return values


class Pruning:
    """While a trial's job runs: each epoch it ends is reported to the trial (its objective so
    far: at the epoch of least validation error, as the job's own result); when the study's pruner
    says so, a marker in the job's folder (``RunFiles.prune_marker``) stops it within 50 steps
    (it records ``pruned``) and the trial is told so (the driver reads ``item.pruned``)."""

    def __init__(self, item: Any, sweep_dir: Path, objective: str | None) -> None:
        self.item, self.sweep_dir, self.objective = item, sweep_dir, objective
        self.done, self.folder = threading.Event(), None
        self.thread = threading.Thread(target=self._run, name="pruning", daemon=True)

    def __enter__(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            self._watch()
        except Exception:  # a watch that fails leaves the trial to train to its end
            log.exception("trial %s: cannot watch its epochs for the pruner", self.item.trial)

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()
        summary = RunRecord(self.folder).read_summary() if self.folder else None
        self.item.pruned = summary is not None and summary.status == PRUNED

    def _watch(self) -> None:
        study = self.item.plan.study
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == self.item.trial)
        trial = optuna.trial.Trial(study, frozen._trial_id)  # Optuna's handle for a trial number
        reported = max(frozen.intermediate_values, default=0)
        while not self.done.wait(POLL_S):
            self.folder = self.folder or self._find()
            rows = read_metrics_file(self.folder / METRICS_JSONL).epochs if self.folder else []
            for row, value in zip(rows, so_far(rows, self.objective)):
                if row["epoch"] > reported and value is not None:
                    reported = row["epoch"]
                    trial.report(value, reported)
                    if trial.should_prune():
                        why = f"{type(study.pruner).__name__}, trial {frozen.number}: {value:.4g}"
                        text = f"pruned after epoch {reported} ({why})"
                        atomic_write(RunRecord(self.folder).prune_marker, text.encode())
                        return

    def _find(self) -> Path | None:
        """The trial's job folder: the one recording its overrides as running."""
        for path in self.sweep_dir.glob(f"*/{SUMMARY_JSON}"):
            summary = RunRecord(path.parent).read_summary()
            if summary and summary.status == RUNNING and summary.overrides == self.item.job:
                return path.parent
        return None
