"""The run record: the one home of the files a run and a sweep write, their formats, the status
vocabulary and the metric keys, and the only code that reads or writes them. Torch- and Hydra-free.
Writes never tear a file; readers tolerate what a kill can leave (docs/internals.md, "Run record").
W&B is a mirror of this record."""

from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import re
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from resnet_exp.atomic import atomic_write
from resnet_exp.tracking.wandb_secrets import scrub_secrets

# -- file names ------------------------------------------------------------------------------------
# One run's folder:
SUMMARY_JSON = "summary.json"  # RunSummary
METRICS_JSONL = "metrics.jsonl"  # one JSON object per finished epoch, plus per-step rows
CHECKPOINTS = "checkpoints"  # LAST_PT (rotated to LAST_PREV_PT), BEST_PT
LAST_PT, BEST_PT = "last.pt", "best.pt"
JOB_ERROR_JSON = "job_error.json"  # a sweep job that raised before writing summary.json
RESPONSES_CSV = "layer_responses.csv"  # Fig. 7: std of each 3x3 layer's response
HYDRA_DIR = ".hydra"  # Hydra's record of the job: HYDRA_CONFIG, hydra.yaml, HYDRA_OVERRIDES
HYDRA_CONFIG, HYDRA_OVERRIDES = "config.yaml", "overrides.yaml"
JOB_LOG = "resnet_exp.log"  # the job's log (hydra.job.name in conf/config.yaml + ".log")
# A sweep's folder (the figures are named by the report):
MULTIRUN_YAML = "multirun.yaml"  # Hydra's record of the sweep command
SUMMARY_CSV = "summary.csv"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
OPTUNA_JOURNAL = "optuna.journal"  # hydra/sweeper=optuna's default study storage
TUNED_JSON = "tuned.json"  # each study's trials, best params, follow-up folders; slot timeline

# -- status vocabulary ----------------------------------------------------------------------------
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
DIVERGED = "diverged"
INTERRUPTED = "interrupted"  # SIGINT (Ctrl-C), or a SLURM requeue
TERMINATED = "terminated"  # SIGTERM
PRUNED = "pruned"  # stopped by an Optuna sweep's pruner (RunFiles.prune_marker); run again, goes on
INCOMPLETE = "incomplete"  # what a reader calls a record without a status (or one still running)
UNKNOWN = "unknown"  # what a reader calls a summary.json it cannot parse
LOST, PENDING = "lost", "pending"  # `status`: a running record whose process is gone; no record
# Ended for good: a re-run of the same command does not continue it (its numbers are final).
FINISHED = frozenset({COMPLETED, FAILED, DIVERGED})
# Ended by a signal (or a pruner): the same job run again resumes it.
STOPPED = frozenset({INTERRUPTED, TERMINATED, PRUNED})

# -- metric keys: an epoch row of metrics.jsonl (errors in %), summary.json's final/best, W&B ------
TRAIN_LOSS, TRAIN_ERR = "train/loss", "train/err"
VAL_LOSS, VAL_ERR = "val/loss", "val/err"
TEST_LOSS, TEST_ERR = "test/loss", "test/err"
SPLIT_KEYS = {"val": (VAL_LOSS, VAL_ERR), "test": (TEST_LOSS, TEST_ERR)}  # an evaluation's keys
LR, EPOCH_S, IMG_S = "lr", "time/epoch_s", "throughput/img_s"
GRAD_NORM = "grad_norm/"  # + stem, stage1..stageK, head: each stage's mean gradient L2 norm
# A per-step row (besides "step"): the window's mean loss and error %, its images.
STEP_LOSS, STEP_ERR, STEP_IMAGES = "train_step/loss", "train_step/err", "train_step/images"

# -- a model's kind (summary.json's model.residual) as the report and the W&B tags name it --------
PLAIN, RESIDUAL = "plain", "residual"
KINDS = ((PLAIN, False), (RESIDUAL, True))  # each name with its model.residual


def kind(residual: bool | None) -> str:
    """``residual`` or ``plain``."""
    return RESIDUAL if residual else PLAIN


def previous_path(path: Path) -> Path:
    """``checkpoints/last.pt`` -> ``checkpoints/last.prev.pt`` (the rotated spare)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


LAST_PREV_PT = previous_path(Path(LAST_PT)).name  # last.prev.pt


class RunFiles:
    """Where each file of one run lives."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.summary_path = self.run_dir / SUMMARY_JSON
        self.metrics_path = self.run_dir / METRICS_JSONL
        self.checkpoint_dir = self.run_dir / CHECKPOINTS
        self.last_checkpoint = self.checkpoint_dir / LAST_PT
        self.job_error_path = self.run_dir / JOB_ERROR_JSON
        self.responses_path = self.run_dir / RESPONSES_CSV
        self.hydra_dir = self.run_dir / HYDRA_DIR
        self.prune_marker = self.run_dir / ".prune"  # an Optuna sweep's pruner: stop; why, as text

    def resumable_checkpoints(self) -> tuple[Path, Path]:
        """What ``trainer.resume=auto`` looks at: ``last.pt``, then its spare ``last.prev.pt``."""
        return self.last_checkpoint, previous_path(self.last_checkpoint)


def _json_safe(value: Any) -> Any:
    """NaN/inf are not JSON; a diverged run's loss is recorded as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _write_json(path: Path, data: dict[str, Any]) -> None:
    data = scrub_secrets(data)  # a W&B key typed into an override never reaches a record
    atomic_write(path, (json.dumps(_json_safe(data), indent=2) + "\n").encode("utf-8"))


@dataclass
class RunSummary:
    """``summary.json``: what one run was and how it ended; written by the entry point, read by the
    report. Keys are as on disk; a field left None is not written (a job that died early)."""

    status: str = RUNNING  # one of the status vocabulary above
    error: str | None = None
    dataset: str | None = None
    seed: int | None = None
    job: str | None = None
    overrides: list[str] = field(default_factory=list)
    epochs_planned: int | None = None
    # where the run's process lives: `status` tells a running job from one whose process died
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
            return cls(status=INCOMPLETE)
        known = {f.name: f for f in fields(cls) if f.name != "extra"}
        values = {k: v for k, v in data.items() if k in known and _fits(known[k].type, v)}
        values["status"] = str(values.get("status") or INCOMPLETE)
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})

    @property
    def ended(self) -> bool:
        """The process wrote how it ended (finished, or stopped by a signal): a later writer
        (a failure handler, the SLURM plugin) leaves the record as it is."""
        return self.status not in (RUNNING, INCOMPLETE)

    @property
    def process_gone(self) -> bool:
        """Recorded ``running`` by a process of this host that no longer exists (``lost``)."""
        if self.status != RUNNING or not self.pid or self.host != socket.gethostname():
            return False
        return not pid_alive(self.pid)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` lives (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists
        pass
    try:  # a zombie (killed, not yet reaped by its parent) never writes again
        return not Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


_TYPES = {"str": str, "int": int, "float": (int, float), "list": list, "dict": dict}


def _fits(annotation: str, value: Any) -> bool:
    """Whether ``value`` matches a RunSummary field's annotation (a string: postponed)."""
    if value is None:
        return "None" in annotation
    kind = _TYPES.get(re.match(r"\w*", annotation).group())
    return kind is None or (isinstance(value, kind) and not isinstance(value, bool))


class DamagedSummary(ValueError):
    """A ``summary.json`` that exists but is not a readable JSON object; the message says why."""


def read_summary_file(path: Path) -> RunSummary | None:
    """The summary in ``path``; None when there is none. Raises :class:`DamagedSummary` when the
    file exists but cannot be read as a JSON object (the report says so; others treat it as none).
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DamagedSummary(f"{type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict):
        raise DamagedSummary(f"a JSON {type(data).__name__}, not an object")
    return RunSummary.from_json(data)


def is_epoch_row(row: dict[str, Any]) -> bool:
    """An end-of-epoch row has "epoch"; a per-step row (``trainer.log_every_steps``) does not."""
    return "epoch" in row


@dataclass
class MetricsFile:
    """What ``metrics.jsonl`` holds: its whole rows in file order, and the lines that are not one
    (a torn last line after a kill), by line number."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    torn: list[int] = field(default_factory=list)

    @property
    def epochs(self) -> list[dict[str, Any]]:
        """The epoch rows by epoch; an epoch written twice (a resumed job) keeps the later row."""
        by_epoch: dict[Any, dict[str, Any]] = {}
        for index, row in enumerate(r for r in self.rows if is_epoch_row(r)):
            epoch = row["epoch"]
            number = isinstance(epoch, (int, float)) and not isinstance(epoch, bool)
            key = epoch if number else ("#", index)
            by_epoch.pop(key, None)  # re-insert so the later row keeps its place in file order
            by_epoch[key] = row
        return sorted(
            by_epoch.values(),
            key=lambda r: r["epoch"] if isinstance(r["epoch"], (int, float)) else math.inf,
        )

    @property
    def steps(self) -> list[dict[str, Any]]:
        """The per-step rows by step; a step written twice (a resumed job) keeps the later row."""
        by_step: dict[int, dict[str, Any]] = {}
        for row in self.rows:
            step = row.get("step")
            if not is_epoch_row(row) and isinstance(step, int) and not isinstance(step, bool):
                by_step[step] = row
        return [by_step[s] for s in sorted(by_step)]

    def epochs_done(self) -> int:
        """How many distinct epochs have a row."""
        return len({r["epoch"] for r in self.rows if is_epoch_row(r) and r["epoch"] is not None})


def read_metrics_file(path: Path) -> MetricsFile:
    """Every row of a ``metrics.jsonl`` (none when it does not exist); a line that is not a JSON
    object is skipped and noted, never fatal. Other read errors (permissions) raise OSError."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return MetricsFile()
    found = MetricsFile()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict):
            found.rows.append(row)
        else:
            found.torn.append(number)
    return found


class RunRecord(RunFiles):
    """Appends one JSON line per epoch and rewrites the summary atomically."""

    def read_metrics(self) -> list[dict]:
        """Rows written so far; a torn line (killed mid-write) is skipped."""
        return read_metrics_file(self.metrics_path).rows

    def truncate_metrics(self, last_epoch: int, last_step: int | None = None) -> list[dict]:
        """Keep epoch rows up to ``last_epoch`` and per-step rows up to ``last_step`` (default: the
        last kept epoch's step): a resumed run never repeats or skips a row; returns the epochs."""
        rows = self.read_metrics()
        epochs = [r for r in rows if is_epoch_row(r) and r["epoch"] <= last_epoch]
        if last_step is None:
            last_step = max((int(r.get("step") or 0) for r in epochs), default=0)
        kept = [r for r in rows if is_epoch_row(r) or int(r.get("step") or 0) <= last_step]
        kept = [r for r in kept if not is_epoch_row(r) or r["epoch"] <= last_epoch]
        atomic_write(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept).encode())
        return epochs

    def append_metrics(self, row: dict) -> None:
        line = (json.dumps(_json_safe(row)) + "\n").encode()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.metrics_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if os.write(fd, line) != len(line):  # one write; a short one: the disk filled up
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.metrics_path))
            os.fsync(fd)
        finally:
            os.close(fd)

    def read_summary(self) -> RunSummary | None:
        """The summary written so far; None when there is none (or it cannot be read)."""
        try:
            return read_summary_file(self.summary_path)
        except DamagedSummary:
            return None

    def write_summary(self, summary: RunSummary) -> None:
        _write_json(self.summary_path, summary.to_json())

    def mark_failed(
        self, error: str, job: str | None = None, overrides: list[str] | None = None
    ) -> None:
        """Record a failure in summary.json unless the run already ended; nothing else changes."""
        summary = self.read_summary() or RunSummary()
        if summary.ended:
            return
        summary.status, summary.error = FAILED, error
        summary.job = summary.job or job
        summary.overrides = summary.overrides or list(overrides or [])
        self.write_summary(summary)


def write_job_error(run_dir: Path, kind: str | None, message: str) -> None:
    """Why a sweep job failed before it wrote summary.json (the report shows it)."""
    _write_json(RunFiles(run_dir).job_error_path, {"type": kind, "message": message})


def read_job_error(run_dir: Path) -> str | None:
    """``"<type>: <message>"`` from a job's job_error.json; None without one."""
    try:
        data = json.loads(RunFiles(run_dir).job_error_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not data.get("message"):
        return None
    kind, message = data.get("type"), data["message"]
    return f"{kind}: {message}" if kind else str(message)


RESPONSE_COLUMNS = ("layer", "name", "std")


def write_responses(run_dir: Path, rows: list[dict[str, Any]]) -> Path:
    """``layer_responses.csv``: one row per 3x3 layer, network order; std at full precision."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RESPONSE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "std": repr(float(row["std"]))})
    return atomic_write(RunFiles(run_dir).responses_path, buffer.getvalue().encode("utf-8"))


def read_responses(run_dir: Path) -> list[dict[str, Any]]:
    """Rows of a run's layer_responses.csv ([] when absent or unreadable)."""
    try:
        with open(RunFiles(run_dir).responses_path, newline="", encoding="utf-8") as handle:
            return [
                {"layer": int(r["layer"]), "name": r["name"], "std": float(r["std"])}
                for r in csv.DictReader(handle)
            ]
    except (OSError, KeyError, ValueError, TypeError):
        return []


def read_tuned(sweep_dir: Path) -> dict[str, Any] | None:
    """An Optuna search's ``tuned.json`` (studies; ``done`` once it ended); else None."""
    try:
        found = json.loads((Path(sweep_dir) / TUNED_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None
