"""Read a sweep's run records (docs/internals.md, "Run record") into one `RunResult` per job.

The report must be buildable from whatever is on disk at any moment of a sweep, including jobs that
crashed before writing `summary.json`, jobs killed mid-epoch (a torn last line in `metrics.jsonl`)
and jobs still running, so every reader here tolerates partial files instead of raising.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from resnet_exp.tracking.names import config_key
from resnet_exp.tracking.record import RunSummary
from resnet_exp.training.responses import RESPONSES_CSV, read_responses

log = logging.getLogger("resnet_exp.report")

SUMMARY = "summary.json"
METRICS = "metrics.jsonl"
HYDRA_DIR = ".hydra"
# Written by `ReportCallback` into a job directory whose job raised before it wrote summary.json, so
# the report can show the exception's message instead of only "no summary.json".
JOB_ERROR = "job_error.json"

PLAIN_BLOCKS = frozenset({"plain", "plain_bottleneck"})
# Block class (model.block.path in .hydra/config.yaml) -> config-group option name.
_BLOCK_CLASSES = {
    "BasicBlock": "basic",
    "Bottleneck": "bottleneck",
    "PlainBlock": "plain",
    "PlainBottleneck": "plain_bottleneck",
    "PreActBlock": "preact",
}
# Directories that never hold (or lie below) a job directory.
_SKIP_DIRS = frozenset({"wandb", "checkpoints", HYDRA_DIR, "__pycache__"})
# Summary statuses as the report shows them: a summary still saying 'running' belongs to a killed
# job (or one still in flight), either way its numbers are not final.
_STATUS_ALIASES = {"running": "incomplete"}
TERMINAL_STATUSES = frozenset({"completed", "failed", "diverged"})

CSV_COLUMNS = (
    "job",
    "block",
    "residual",
    "depth",
    "shortcut",
    "params",
    "flops",
    "epochs",
    "final_train_err",
    "best_val_err",
    "test_err_at_best_val",
    "final_test_err",
    "wall_time_s",
    "status",
)


@dataclass
class RunResult:
    """One job of a sweep, as far as its files tell (None where they do not)."""

    job_dir: Path
    name: str  # job directory relative to the sweep dir ("0", "1", ...), "." for a single run
    job: str  # the job's overrides, comma-joined (W&B run name)
    status: str  # completed | failed | diverged | incomplete
    error: str | None = None
    block: str | None = None
    residual: bool | None = None
    depth: int | None = None
    family: str | None = None
    shortcut: str | None = None
    params: int | None = None
    flops: int | float | None = None
    dataset: str | None = None
    seed: int | None = None
    overrides: list[str] = field(default_factory=list)
    epochs: int = 0
    epochs_planned: int | None = None
    final_train_err: float | None = None
    best_val_err: float | None = None
    test_err_at_best_val: float | None = None
    final_test_err: float | None = None
    wall_time_s: float | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    skipped_lines: int = 0  # unparseable metrics.jsonl lines (a torn last line after a kill)
    # Replicates: the job's overrides without the seed (resnet_exp.tracking.names).
    config: str = "default"
    steps: list[dict[str, Any]] = field(default_factory=list)  # per-step training rows
    responses: list[dict[str, Any]] = field(default_factory=list)  # Fig. 7 (layer_responses.csv)
    device: str | None = None
    precision: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the run finished normally, so its final numbers may enter the verdict."""
        return self.status == "completed"

    def sort_key(self) -> tuple:
        """Plain before residual, then by depth, then block name and job directory."""
        return (
            1 if self.residual else 0,
            self.depth if self.depth is not None else math.inf,
            self.block or "",
            _natural_key(self.name),
        )


# -------------------------------------------------------------------------------------------------
# Sweep identity


def sweep_id(sweep_dir: str | os.PathLike[str]) -> str:
    """A W&B-group-safe id unique to one sweep directory, stable across processes.

    The last two path components (Hydra's `<date>/<time>`) keep it readable; a short hash of the
    absolute path keeps two sweeps started in the same second (in different projects or output
    roots) apart. The training side uses the same function for its run group, so the report run
    lands in the same group. Example: `outputs/multirun/2026-11-27/23-40-01` ->
    `2026-11-27_23-40-01_ab12cd`.
    """
    path = Path(sweep_dir).expanduser().resolve()
    parts = [p for p in path.parts[-2:] if p not in ("/", "")]
    readable = "_".join(re.sub(r"[^A-Za-z0-9.-]+", "-", p).strip("-") for p in parts) or "sweep"
    digest = hashlib.sha1(str(path).encode("utf-8")).hexdigest()[:6]
    return f"{readable[:100]}_{digest}"


# -------------------------------------------------------------------------------------------------
# Discovery


def is_job_dir(path: Path) -> bool:
    """A job directory holds Hydra's `.hydra/` record or the trainer's `summary.json`."""
    return (path / HYDRA_DIR).is_dir() or (path / SUMMARY).is_file()


def find_job_dirs(sweep_dir: Path) -> list[Path]:
    """Job directories under `sweep_dir` (itself, for a single run), in natural order.

    Job directories do not nest, so the walk stops at the first one on each branch; W&B, checkpoint
    and hidden directories (`.submitit/`, ...) are never entered.
    """
    sweep_dir = Path(sweep_dir)
    if is_job_dir(sweep_dir):
        return [sweep_dir]
    found: list[Path] = []
    for root, dirs, _files in os.walk(sweep_dir):
        here = Path(root)
        if here != sweep_dir and is_job_dir(here):
            found.append(here)
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".")]
    return sorted(found, key=lambda p: _natural_key(p.relative_to(sweep_dir).as_posix()))


def _natural_key(text: str) -> tuple:
    """'2' < '10': job numbers sort as numbers."""
    return tuple(
        (0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text) if t
    )


# -------------------------------------------------------------------------------------------------
# Readers


def _read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Every object of a JSON-lines file in file order, and how many lines were unreadable."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], 0
    except OSError as exc:
        log.warning("cannot read %s: %s", path, exc)
        return [], 0
    rows: list[dict[str, Any]] = []
    skipped = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            skipped += 1
            log.warning("%s:%d is not valid JSON (torn line?); skipped", path, number)
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            skipped += 1
    return rows, skipped


def is_step_row(row: dict[str, Any]) -> bool:
    """A per-step training row (`trainer.log_every_steps`): it has no epoch, only a step."""
    return "epoch" not in row and "train_step/err" in row


def epoch_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The epoch rows ordered by epoch; if a resumed job appended an epoch twice, the later wins."""
    by_epoch: dict[Any, dict[str, Any]] = {}
    for index, row in enumerate(r for r in rows if not is_step_row(r)):
        epoch = row.get("epoch")
        key = (
            epoch
            if isinstance(epoch, (int, float)) and not isinstance(epoch, bool)
            else ("#", index)
        )
        by_epoch.pop(key, None)  # re-insert so the later row keeps its place in file order
        by_epoch[key] = row
    return sorted(
        by_epoch.values(),
        key=lambda r: r["epoch"] if isinstance(r.get("epoch"), (int, float)) else math.inf,
    )


def step_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-step rows ordered by step; a step written twice (resumed job) keeps the later."""
    by_step: dict[int, dict[str, Any]] = {}
    for row in rows:
        step = row.get("step")
        if is_step_row(row) and isinstance(step, int) and not isinstance(step, bool):
            by_step[step] = row
    return [by_step[s] for s in sorted(by_step)]


def read_metrics(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Epoch rows of `metrics.jsonl` ordered by epoch, and how many lines were unreadable.

    A job killed mid-write leaves a torn last line: it is skipped, not fatal. If a resumed job
    appended an epoch twice, the later row wins. Per-step rows are left out (see `step_rows`).
    """
    rows, skipped = _read_jsonl(path)
    return epoch_rows(rows), skipped


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s (%s)", path, exc)
        return None
    return data if isinstance(data, dict) else None


def _json_problem(path: Path) -> str:
    """Why ``path`` is not a JSON object, in a few words."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return f"a JSON {type(data).__name__}, not an object"


def _read_yaml(path: Path) -> Any:
    """Plain YAML (interpolations stay strings): the report only needs literal values."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, yaml.YAMLError) as exc:
        log.warning("cannot read %s: %s", path, exc)
        return None


def _get(tree: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return tree


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _block_name(block: Any) -> str | None:
    """Config-group option name of a block, from a name or a `{_target_, path}` node."""
    if isinstance(block, str) and block:
        tail = block.rsplit(".", 1)[-1]
        return _BLOCK_CLASSES.get(tail, block)
    if isinstance(block, dict):
        return _block_name(block.get("path") or block.get("name"))
    return None


def _override_value(overrides: Iterable[str], *keys: str) -> str | None:
    for item in overrides:
        key, sep, value = str(item).lstrip("+~").partition("=")
        if sep and key in keys:
            return value
    return None


# -------------------------------------------------------------------------------------------------
# One job


def read_run(job_dir: Path, sweep_dir: Path | None = None) -> RunResult:
    """Everything the report needs about one job directory; never raises for missing/partial
    files."""
    job_dir = Path(job_dir)
    try:
        name = job_dir.relative_to(sweep_dir).as_posix() if sweep_dir else job_dir.name
    except ValueError:
        name = job_dir.name
    all_rows, skipped = _read_jsonl(job_dir / METRICS)
    metrics = epoch_rows(all_rows)
    data = _read_json(job_dir / SUMMARY)
    summary = None if data is None else RunSummary.from_json(data)
    config = _read_yaml(job_dir / HYDRA_DIR / "config.yaml")
    overrides = _read_yaml(job_dir / HYDRA_DIR / "overrides.yaml")
    overrides = [str(o) for o in overrides] if isinstance(overrides, list) else []

    if summary is not None:
        raw_status, error = summary.status, summary.error
    elif (job_dir / SUMMARY).is_file():  # written, but damaged: the job did not crash early
        raw_status = "unknown"
        planned = _get(config, "trainer.epochs")
        error = (
            f"{SUMMARY} cannot be parsed ({_json_problem(job_dir / SUMMARY)}), so this job's "
            f"status is unknown; its {METRICS} holds {len(metrics)} row(s)"
            + (f" of {planned} planned" if planned is not None else "")
            + ". Re-running the sweep command resumes or re-records it."
        )
    else:
        raw_status = "failed"
        error = _job_error(job_dir) or (
            "no summary.json: the job crashed before writing it (see its log)"
        )
    status = _STATUS_ALIASES.get(raw_status, raw_status)
    model = summary.model if summary else {}

    block = _block_name(model.get("block"))
    if block is None:
        block = _block_name(_override_value(overrides, "model/block", "model.block"))
    if block is None:
        block = _block_name(_get(config, "model.block"))
    residual = model.get("residual")
    if not isinstance(residual, bool):
        residual = None if block is None else block not in PLAIN_BLOCKS

    if summary and summary.overrides:
        overrides = [str(o) for o in summary.overrides]
    job = (summary.job if summary else None) or ",".join(overrides) or name
    written = summary or RunSummary()

    run = RunResult(
        job_dir=job_dir,
        name=name,
        job=str(job),
        status=status,
        error=str(error) if error not in (None, "") else None,
        block=block,
        residual=residual,
        depth=_as_int(model.get("depth", _get(config, "model.depth"))),
        family=_str_or_none(model.get("family", _get(config, "model.family"))),
        shortcut=_str_or_none(model.get("shortcut", _get(config, "model.shortcut"))),
        params=_as_int(model.get("params")),
        flops=_as_int(model.get("flops")),
        dataset=_str_or_none(written.dataset or _get(config, "data.name")),
        seed=_as_int(_first(written.seed, _get(config, "seed"))),
        overrides=overrides,
        epochs_planned=_as_int(_first(written.epochs_planned, _get(config, "trainer.epochs"))),
        wall_time_s=_as_float(written.wall_time_s),
        metrics=metrics,
        skipped_lines=skipped,
        config=config_key(overrides),
        steps=step_rows(all_rows),
        responses=read_responses(job_dir / RESPONSES_CSV),
        device=_str_or_none((written.data or {}).get("device")),
        precision=_str_or_none((written.speed or {}).get("precision")),
    )
    _fill_results(run, summary if raw_status in TERMINAL_STATUSES else None)
    return run


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _str_or_none(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.startswith("${")):
        return None
    return str(value)


def _job_error(job_dir: Path) -> str | None:
    data = _read_json(job_dir / JOB_ERROR)
    if not data:
        return None
    kind, message = data.get("type"), data.get("message")
    if not message:
        return None
    return f"{kind}: {message}" if kind else str(message)


def _fill_results(run: RunResult, summary: RunSummary | None) -> None:
    """Final/best numbers: a finished job's summary.json is authoritative, else recompute from
    metrics."""
    final = summary.final if summary else None
    best = summary.best if summary else None
    rows = run.metrics
    if not isinstance(final, dict) or not final:
        final = rows[-1] if rows else {}
    if not isinstance(best, dict) or not best:
        with_val = [r for r in rows if _finite(r.get("val/err"))]
        best = min(with_val, key=lambda r: r["val/err"]) if with_val else {}
    epochs = summary.epochs if summary else None
    run.epochs = epochs if epochs is not None else len(rows)
    run.final_train_err = _as_float(final.get("train/err"))
    run.final_test_err = _as_float(final.get("test/err"))
    run.best_val_err = _as_float(best.get("val/err"))
    run.test_err_at_best_val = _as_float(best.get("test/err"))


def _finite(value: Any) -> bool:
    number = _as_float(value)
    return number is not None and math.isfinite(number)


# -------------------------------------------------------------------------------------------------
# Sweep


def collect_runs(sweep_dir: Path) -> list[RunResult]:
    """Every job under `sweep_dir`, sorted plain first then residual, by depth."""
    sweep_dir = Path(sweep_dir)
    runs = [read_run(d, sweep_dir) for d in find_job_dirs(sweep_dir)]
    return sorted(runs, key=RunResult.sort_key)


def datasets(runs: Iterable[RunResult]) -> list[str]:
    """Distinct dataset names in first-seen order."""
    seen: list[str] = []
    for run in runs:
        if run.dataset and run.dataset not in seen:
            seen.append(run.dataset)
    return seen


def csv_row(run: RunResult) -> dict[str, Any]:
    """One summary.csv row; floats keep full precision (repr) so they round-trip exactly."""
    values = {
        "job": run.job,
        "block": run.block,
        "residual": None if run.residual is None else str(run.residual).lower(),
        "depth": run.depth,
        "shortcut": run.shortcut,
        "params": run.params,
        "flops": run.flops,
        "epochs": run.epochs,
        "final_train_err": run.final_train_err,
        "best_val_err": run.best_val_err,
        "test_err_at_best_val": run.test_err_at_best_val,
        "final_test_err": run.final_test_err,
        "wall_time_s": run.wall_time_s,
        "status": run.status,
    }
    return {
        k: "" if v is None else repr(v) if isinstance(v, float) else v for k, v in values.items()
    }
