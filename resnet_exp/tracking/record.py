"""The local run record: ``metrics.jsonl`` and ``summary.json``, written so a kill never tears them.

This is the source of truth for a run; W&B is a mirror of it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from resnet_exp.atomic import atomic_write


def _json_safe(value: Any) -> Any:
    """NaN/inf are not JSON; a diverged run's loss is recorded as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


@dataclass
class RunSummary:
    """``summary.json``: what one run was and how it ended; written by the entry point, read by the
    report. Keys are as on disk; a field left None is not written (a job that died early)."""

    # running | completed | failed | diverged | interrupted (SIGINT) | terminated (SIGTERM)
    status: str = "running"
    error: str | None = None
    dataset: str | None = None
    seed: int | None = None
    job: str | None = None
    overrides: list[str] = field(default_factory=list)
    epochs_planned: int | None = None
    # where the run's process lives, so `python -m resnet_exp.status` can tell a running job from
    # one whose process died
    host: str | None = None
    pid: int | None = None
    config_key: str | None = None  # what a re-run of its sweep compares (training/job_plan.py)
    model: dict[str, Any] = field(default_factory=dict)  # block, depth, family, params, flops...
    speed: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    attempts: int | None = None
    resumed_from: dict[str, Any] | None = None
    wall_time_s: float | None = None
    wandb: dict[str, Any] | None = None
    wandb_run_id: str | None = None  # chosen before W&B starts; every attempt continues this run
    epochs: int | None = None
    steps: int | None = None
    final: dict[str, Any] | None = None  # the last epoch's metrics row
    best: dict[str, Any] | None = None  # the row of the best validation (or training) error
    stopped_by: str | None = None  # the signal that ended an interrupted/terminated run
    warnings: list[str] = field(default_factory=list)  # values the run adjusted (and said so)
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know

    _ALWAYS = ("status", "error")

    def to_json(self) -> dict[str, Any]:
        out = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "extra"
            and (f.name in self._ALWAYS or getattr(self, f.name) not in (None, {}, []))
        }
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data: Any) -> RunSummary:
        """Tolerant: a partial, older or hand-edited file gives a summary with what it holds;
        values of the wrong kind are dropped rather than trusted."""
        if not isinstance(data, dict):
            return cls(status="incomplete")
        known = {f.name: f for f in fields(cls) if f.name != "extra"}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key in known and _fits(known[key].type, value):
                values[key] = value
        values.setdefault("status", "incomplete")
        values["status"] = str(values["status"] or "incomplete")
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})

    @property
    def finished(self) -> bool:
        return self.status not in ("running", "incomplete")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fits(annotation: str, value: Any) -> bool:
    """Whether ``value`` matches a RunSummary field's annotation (a string: postponed)."""
    if value is None:
        return "None" in annotation
    if annotation.startswith("str"):
        return isinstance(value, str)
    if annotation.startswith("int"):
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation.startswith("float"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation.startswith("list"):
        return isinstance(value, list)
    if annotation.startswith("dict"):
        return isinstance(value, dict)
    return True


def keep_rows(rows: list[dict], last_epoch: int, last_step: int | None) -> list[dict]:
    """Epoch rows (they carry "epoch") up to ``last_epoch``; per-step rows up to ``last_step``."""
    if last_step is None:
        epochs = [r for r in rows if "epoch" in r and r["epoch"] <= last_epoch]
        last_step = max((int(r.get("step") or 0) for r in epochs), default=0)
    return [
        r
        for r in rows
        if (r["epoch"] <= last_epoch if "epoch" in r else int(r.get("step") or 0) <= last_step)
    ]


class RunRecord:
    """Appends one JSON line per epoch and rewrites the summary atomically."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.summary_path = self.run_dir / "summary.json"
        self.checkpoint_dir = self.run_dir / "checkpoints"

    def read_metrics(self) -> list[dict]:
        """Rows written so far; a torn last line (killed mid-write) is ignored."""
        if not self.metrics_path.exists():
            return []
        rows = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return rows

    def truncate_metrics(self, last_epoch: int, last_step: int | None = None) -> list[dict]:
        """Keep epoch rows up to ``last_epoch`` and per-step rows up to ``last_step`` (default: the
        last kept epoch's step), so a resumed run neither repeats nor skips a row. Returns the
        epoch rows."""
        kept = keep_rows(self.read_metrics(), last_epoch, last_step)
        payload = "".join(json.dumps(r) + "\n" for r in kept).encode()
        atomic_write(self.metrics_path, payload)
        return [r for r in kept if "epoch" in r]

    def append_metrics(self, row: dict) -> None:
        line = (json.dumps(_json_safe(row)) + "\n").encode()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.metrics_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write call: the line lands whole or not at all
            os.fsync(fd)
        finally:
            os.close(fd)

    def read_summary(self) -> RunSummary | None:
        """The summary written so far; None when there is none (or it cannot be read)."""
        try:
            return RunSummary.from_json(json.loads(self.summary_path.read_text()))
        except (OSError, ValueError):
            return None

    def write_summary(self, summary: RunSummary) -> None:
        text = json.dumps(_json_safe(summary.to_json()), indent=2, sort_keys=False) + "\n"
        atomic_write(self.summary_path, text.encode())

    def mark_failed(
        self, error: str, job: str | None = None, overrides: list[str] | None = None
    ) -> None:
        """Record a failure in summary.json unless the run already ended; nothing else changes."""
        summary = self.read_summary() or RunSummary()
        if summary.finished:
            return
        summary.status, summary.error = "failed", error
        summary.job = summary.job or job
        summary.overrides = summary.overrides or list(overrides or [])
        self.write_summary(summary)
