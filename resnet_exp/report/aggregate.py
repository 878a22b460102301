"""Read a sweep's run records into one `RunResult` per job; the report is built from whatever is
on disk at any moment of a sweep, so nothing here raises on a partial file.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from resnet_exp.tracking import identity as job_identity
from resnet_exp.tracking.names import config_overrides
from resnet_exp.tracking.record import (
    CHECKPOINTS,
    COMPLETED,
    FAILED,
    FINISHED,
    HYDRA_CONFIG,
    HYDRA_DIR,
    HYDRA_OVERRIDES,
    INCOMPLETE,
    METRICS_JSONL,
    RUNNING,
    SUMMARY_JSON,
    TEST_ERR,
    TRAIN_ERR,
    UNKNOWN,
    VAL_ERR,
    DamagedSummary,
    MetricsFile,
    RunFiles,
    RunSummary,
    read_job_error,
    read_metrics_file,
    read_responses,
    read_summary_file,
)

log = logging.getLogger("resnet_exp.report")

PLAIN_BLOCKS = frozenset({"plain", "plain_bottleneck"})
# Block class (model.block.path in .hydra/config.yaml) -> config-group option name.
_BLOCK_CLASSES = {
    "BasicBlock": "basic", "Bottleneck": "bottleneck", "PlainBlock": "plain",
    "PlainBottleneck": "plain_bottleneck", "PreActBlock": "preact",
}  # fmt: skip
# Directories that never hold (or lie below) a job directory.
_SKIP_DIRS = frozenset({"wandb", CHECKPOINTS, HYDRA_DIR, "__pycache__"})

# summary.csv's per-run columns, each a RunResult attribute (study.py adds the statistics).
CSV_COLUMNS = (
    "job", "block", "residual", "depth", "shortcut", "params", "flops", "epochs",
    "final_train_err", "best_val_err", "test_err_at_best_val", "final_test_err", "wall_time_s",
    "status",
)  # fmt: skip


@dataclass
class RunResult:
    """One job of a sweep, as far as its files tell (None where they do not)."""

    job_dir: Path
    name: str  # job folder relative to the sweep folder (named after its overrides); "." alone
    job: str  # the job's overrides, comma-joined (W&B run name)
    status: str  # the record's status (RUNNING shown as INCOMPLETE), or UNKNOWN (unreadable)
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
    # The configuration's label: the job's overrides without the seed (tracking/names.py)
    config: str = "default"
    identity: str | None = None  # what it computes (tracking/identity.py); None: unknown
    configuration: str = ""  # the identity without the seed: replicates share it
    duplicates: list[str] = field(default_factory=list)  # other folders of this identity
    steps: list[dict[str, Any]] = field(default_factory=list)  # per-step training rows
    responses: list[dict[str, Any]] = field(default_factory=list)  # Fig. 7 (layer_responses.csv)
    device: str | None = None
    precision: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the run finished normally, so its final numbers may enter the verdict."""
        return self.status == COMPLETED

    def sort_key(self) -> tuple:
        """Plain before residual, then by depth, then block name and job directory."""
        depth = self.depth if self.depth is not None else math.inf
        return (1 if self.residual else 0, depth, self.block or "", _natural_key(self.name))


def is_job_dir(path: Path) -> bool:
    """A job directory holds Hydra's `.hydra/` record or the trainer's `summary.json`."""
    files = RunFiles(path)
    return files.hydra_dir.is_dir() or files.summary_path.is_file()


def find_job_dirs(sweep_dir: Path) -> list[Path]:
    """Job directories under `sweep_dir` (itself, for a single run), in natural order; the walk
    stops at the first on each branch (they do not nest) and skips W&B, checkpoint and hidden ones.
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


def _read_metrics(path: Path) -> MetricsFile:
    """A job's metrics.jsonl; unreadable lines (a torn last line after a kill) are logged."""
    try:
        found = read_metrics_file(path)
    except OSError as exc:
        log.warning("cannot read %s: %s", path, exc)
        return MetricsFile()
    for number in found.torn:
        log.warning("%s:%d is not valid JSON (torn line?); skipped", path, number)
    return found


def _read_yaml(path: Path) -> Any:
    """Plain YAML (interpolations stay strings): the report only needs literal values."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, yaml.YAMLError) as exc:  # ValueError: not UTF-8
        log.warning("cannot read %s: %s", path, exc)
        return None


def _get(tree: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return tree


def _as(kind: type, value: Any) -> Any:
    """``kind(value)``, or None for a missing, boolean or unconvertible value."""
    try:
        return None if value is None or isinstance(value, bool) else kind(value)
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


def read_run(job_dir: Path, sweep_dir: Path | None = None) -> RunResult:
    """Everything the report needs about one job directory (never raises on a partial one)."""
    files = RunFiles(job_dir)
    metrics = _read_metrics(files.metrics_path)
    try:
        summary, problem = read_summary_file(files.summary_path), None
    except DamagedSummary as exc:  # absent: None; damaged: None, and why
        log.warning("cannot read %s (%s)", files.summary_path, exc)
        summary, problem = None, str(exc)
    config = _read_yaml(files.hydra_dir / HYDRA_CONFIG)
    listed = _read_yaml(files.hydra_dir / HYDRA_OVERRIDES)
    hydra_overrides = [str(o) for o in listed] if isinstance(listed, list) else []
    overrides = [str(o) for o in summary.overrides] if summary else []
    overrides = overrides or hydra_overrides
    try:  # the job folder relative to the sweep folder ("." for a single run)
        name = files.run_dir.relative_to(sweep_dir).as_posix() if sweep_dir else files.run_dir.name
    except ValueError:
        name = files.run_dir.name
    raw_status, error = _outcome(files.run_dir, summary, problem, config, len(metrics.epochs))
    run = RunResult(
        job_dir=files.run_dir,
        name=name,
        job=shareable(str((summary.job if summary else None) or ",".join(overrides) or name)),
        status=INCOMPLETE if raw_status == RUNNING else raw_status,  # killed, or in flight
        error=str(error) if error not in (None, "") else None,
        overrides=overrides,
        metrics=metrics.epochs,
        skipped_lines=len(metrics.torn),
        config=shareable(",".join(config_overrides(overrides)) or "default"),
        identity=job_identity.identity_of_folder(files.run_dir),
        steps=metrics.steps,
        responses=read_responses(files.run_dir),
    )
    run.configuration = job_identity.configuration(run.identity) if run.identity else run.config
    _describe(run, summary or RunSummary(), config, hydra_overrides)
    _fill_results(run, summary if raw_status in FINISHED else None)
    return run


def _outcome(
    job_dir: Path, summary: RunSummary | None, problem: str | None, config: Any, epochs: int
) -> tuple[str, str | None]:
    """The job's status as recorded and its error, also for a job without a readable summary."""
    if summary is not None:
        return summary.status, summary.error
    if problem is not None:  # written, but damaged: the job did not crash early
        planned = _get(config, "trainer.epochs")
        return UNKNOWN, (
            f"{SUMMARY_JSON} cannot be parsed ({problem}), so this job's status is unknown; its "
            f"{METRICS_JSONL} holds {epochs} row(s)"
            + (f" of {planned} planned" if planned is not None else "")
            + ". Re-running the sweep command resumes or re-records it."
        )
    return FAILED, read_job_error(job_dir) or (
        f"no {SUMMARY_JSON}: the job crashed before writing it (see its log)"
    )


def _describe(run: RunResult, written: RunSummary, config: Any, hydra_overrides: list[str]) -> None:
    """The model, data and speed facts: from summary.json, else from Hydra's record of the job."""
    model = written.model
    block = _block_name(model.get("block"))
    if block is None:
        block = _block_name(_override_value(hydra_overrides, "model/block", "model.block"))
    if block is None:
        block = _block_name(_get(config, "model.block"))
    residual = model.get("residual")
    if not isinstance(residual, bool):
        residual = None if block is None else block not in PLAIN_BLOCKS
    run.block, run.residual = block, residual
    run.depth = _as(int, model.get("depth", _get(config, "model.depth")))
    run.family = _str_or_none(model.get("family", _get(config, "model.family")))
    run.shortcut = _str_or_none(model.get("shortcut", _get(config, "model.shortcut")))
    run.params, run.flops = _as(int, model.get("params")), _as(int, model.get("flops"))
    run.dataset = _str_or_none(written.dataset or _get(config, "data.name"))
    run.seed = _as(int, _first(written.seed, _get(config, "seed")))
    run.epochs_planned = _as(int, _first(written.epochs_planned, _get(config, "trainer.epochs")))
    run.wall_time_s = _as(float, written.wall_time_s)
    run.device = _str_or_none((written.data or {}).get("device"))
    run.precision = _str_or_none((written.speed or {}).get("precision"))


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _str_or_none(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.startswith("${")):
        return None
    return str(value)


def _fill_results(run: RunResult, summary: RunSummary | None) -> None:
    """Final/best numbers: a finished job's summary.json's, else recomputed from its metrics."""
    final = summary.final if summary else None
    best = summary.best if summary else None
    rows = run.metrics
    if not isinstance(final, dict) or not final:
        final = rows[-1] if rows else {}
    if not isinstance(best, dict) or not best:
        with_val = [r for r in rows if _finite(r.get(VAL_ERR))]
        best = min(with_val, key=lambda r: r[VAL_ERR]) if with_val else {}
    epochs = summary.epochs if summary else None
    run.epochs = epochs if epochs is not None else len(rows)
    run.final_train_err = _as(float, final.get(TRAIN_ERR))
    run.final_test_err = _as(float, final.get(TEST_ERR))
    run.best_val_err = _as(float, best.get(VAL_ERR))
    run.test_err_at_best_val = _as(float, best.get(TEST_ERR))


def _finite(value: Any) -> bool:
    number = _as(float, value)
    return number is not None and math.isfinite(number)


def collect_runs(sweep_dir: Path) -> list[RunResult]:
    """Every job under `sweep_dir` once, sorted plain first then residual, by depth. Where two
    folders hold one identity (a sweep made before jobs were known by it), the completed one is
    read, else the latest; it names the others in ``duplicates``."""
    sweep_dir = Path(sweep_dir)
    runs = [read_run(d, sweep_dir) for d in find_job_dirs(sweep_dir)]
    same: dict[str, list[RunResult]] = {}
    for run in runs:
        same.setdefault(run.identity or str(run.job_dir), []).append(run)
    kept = []
    for group in same.values():
        chosen = job_identity.pick([r.job_dir for r in group]) if len(group) > 1 else None
        keep = next((r for r in group if r.job_dir == chosen), group[0])
        keep.duplicates = [r.name for r in group if r is not keep]
        kept.append(keep)
    return sorted(kept, key=RunResult.sort_key)


def shareable(text: str, sweep_dir: Path | None = None) -> str:
    """``text`` with paths as the reader of a shared file sees them: under the sweep relative to
    it, under the home folder from ``~``; never a developer's absolute path."""
    places = [(p, "") for p in {sweep_dir.absolute(), sweep_dir.resolve()}] if sweep_dir else []
    places += [(Path.home(), "~/")] if Path.home() != Path("/") else []
    for folder, shown in places:
        text = text.replace(f"{folder}/", shown).replace(str(folder), shown.rstrip("/") or ".")
    return text


def datasets(runs: Iterable[RunResult]) -> list[str]:
    """Distinct dataset names in first-seen order."""
    return list(dict.fromkeys(run.dataset for run in runs if run.dataset))


def csv_cells(run: RunResult) -> dict[str, Any]:
    """summary.csv's per-run columns with typed values (W&B's table keeps numbers numbers)."""
    return {column: getattr(run, column) for column in CSV_COLUMNS}
