"""Build every sweep-report file in one call, and optionally log the report to W&B.

`build_report` is what the CLI (`python -m resnet_exp.report`) and the Hydra callback both run: read
the run records, then write summary.csv, degradation.png, gradients.png and report.md, each
atomically, so parallel jobs rebuilding at the same time never leave a torn file behind.
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resnet_exp.errors import UserError
from resnet_exp.report.aggregate import CSV_COLUMNS, RunResult, collect_runs, csv_cells, datasets
from resnet_exp.report.html import write_html
from resnet_exp.report.markdown import (
    DEGRADATION_PNG,
    GRADIENTS_PNG,
    RESPONSES_PNG,
    headline,
    write_report,
)
from resnet_exp.report.plots import plot_degradation, plot_gradients, plot_layer_responses
from resnet_exp.report.study import SUMMARY_COLUMNS, config_groups, config_row, write_summary_csv
from resnet_exp.tracking.record import REPORT_HTML, REPORT_MD, SUMMARY_CSV, sweep_id

log = logging.getLogger("resnet_exp.report")

REPORT_RUN_NAME = "report"
REPORT_JOB_TYPE = "report"


class ReportError(UserError):
    """The report cannot be built (no such directory, no runs in it); one paragraph, no
    traceback."""


@dataclass
class ReportResult:
    """What `build_report` wrote (`paths`: summary_csv, the three PNGs, report_md, report_html)
    and from which runs; `plotted` holds the data behind each figure."""

    paths: dict[str, Path]
    runs: list[RunResult]
    plotted: dict[str, dict[str, Any]] = field(default_factory=dict)


def build_report(sweep_dir: str | os.PathLike[str]) -> ReportResult:
    """(Re)build summary.csv, degradation.png, gradients.png and report.md in `sweep_dir`.

    Works on a sweep in any state: failed, diverged and still-running jobs are reported as such.
    Raises `ReportError` when `sweep_dir` is not a directory or holds no job directories.
    """
    sweep_dir = Path(sweep_dir).expanduser()
    if not sweep_dir.is_dir():
        what = "does not exist" if not sweep_dir.exists() else "is not a directory"
        raise ReportError(
            f"Cannot build a sweep report: {str(sweep_dir)!r} {what}. Pass the directory of a "
            "sweep, e.g. outputs/multirun/<date>/<time> (the one holding the numbered job "
            "directories), or the directory of a single run."
        )
    runs = collect_runs(sweep_dir)
    if not runs:
        raise ReportError(
            f"Cannot build a sweep report: no runs found in {str(sweep_dir)!r}. A run directory "
            "holds Hydra's .hydra/ folder or a summary.json; none of its subdirectories does. Pass "
            "a sweep directory such as outputs/multirun/<date>/<time>, or wait until its first job "
            "has started."
        )
    names = datasets(runs)
    paths = {
        "summary_csv": sweep_dir / SUMMARY_CSV,
        "degradation_png": sweep_dir / DEGRADATION_PNG,
        "gradients_png": sweep_dir / GRADIENTS_PNG,
        "responses_png": sweep_dir / RESPONSES_PNG,
        "report_md": sweep_dir / REPORT_MD,
        "report_html": sweep_dir / REPORT_HTML,
    }
    write_summary_csv(runs, paths["summary_csv"])
    plotted = {
        "degradation": plot_degradation(
            runs, paths["degradation_png"], ", ".join(names) if names else None
        ),
        "gradients": plot_gradients(runs, paths["gradients_png"]),
        "responses": plot_layer_responses(runs, paths["responses_png"]),
    }
    write_report(runs, sweep_dir)
    write_html(runs, sweep_dir)
    return ReportResult(paths=paths, runs=runs, plotted=plotted)


# -------------------------------------------------------------------------------------------------
# Weights & Biases


def logger_settings(logger: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """W&B arguments from a `logger` config node (plain mapping), or None when W&B is off.

    `logger=none` has no `mode` key; `logger.mode=disabled` turns W&B off explicitly.
    """
    if not isinstance(logger, Mapping) or logger.get("mode") is None:
        return None
    mode = str(logger.get("mode")).lower()
    if mode == "disabled":
        return None
    return {
        "project": logger.get("project") or "resnet-exp",
        "mode": mode,
        "group": logger.get("group") or None,
        "entity": logger.get("entity") or None,
        "dir": logger.get("dir") or None,
        "init_timeout": logger.get("init_timeout") or 15.0,
    }


def _resolve_mode(mode: str, init_timeout: float) -> str:
    """online/offline/disabled, decided without prompting or hanging (same rules as training
    runs)."""
    mode = str(mode or "auto").lower()
    if mode in ("offline", "disabled"):
        return mode
    try:
        from resnet_exp.tracking.wandb_logger import WandbLogger

        resolved, _why = WandbLogger(mode=mode, init_timeout=init_timeout)._resolve_mode()
        return resolved
    except UserError:
        raise
    except Exception:  # tracking layer unavailable: never risk a prompt, stay offline
        env = os.environ.get("WANDB_MODE", "").lower()
        return "disabled" if env == "disabled" else "offline"


def table_data(runs: Sequence[RunResult]) -> list[list[Any]]:
    """summary.csv's rows with typed cells (numbers stay numbers, so W&B can plot the table)."""
    return [list(csv_cells(run).values()) for run in sorted(runs, key=RunResult.sort_key)]


def log_report_to_wandb(
    sweep_dir: str | os.PathLike[str],
    runs: Sequence[RunResult],
    project: str = "resnet-exp",
    group: str | None = None,
    mode: str = "auto",
    *,
    entity: str | None = None,
    dir: str | os.PathLike[str] | None = None,
    init_timeout: float = 15.0,
) -> dict[str, Any] | None:
    """Log the report as one extra W&B run named "report" (job_type "report") in the sweep's group.

    Logs summary.csv as a `wandb.Table`, the two figures as images and the headline verdict in the
    run summary. `group` defaults to `sweep_id(sweep_dir)`, the group the training runs use. Run
    files go to `dir`, else $WANDB_DIR, else the sweep directory. Never raises: a W&B problem is a
    warning and None is returned, because the report files on disk are what matters. Returns
    mode/run_id/dir/sync otherwise.
    """
    try:
        return _log_report_to_wandb(
            Path(sweep_dir), list(runs), project, group, mode, entity, dir, init_timeout
        )
    except Exception as exc:
        log.warning(
            "Could not log the sweep report to W&B (%s: %s); the report files are unaffected.",
            type(exc).__name__,
            exc,
        )
        return None


def _log_report_to_wandb(
    sweep_dir: Path,
    runs: list[RunResult],
    project: str,
    group: str | None,
    mode: str,
    entity: str | None,
    dir: str | os.PathLike[str] | None,
    init_timeout: float,
) -> dict[str, Any] | None:
    resolved = _resolve_mode(mode, init_timeout)
    if resolved == "disabled":
        log.info("W&B is disabled; the sweep report is not logged to W&B.")
        return None
    import wandb  # lazy: slow to import, and not needed for the files

    if dir is not None:
        parent: str | None = str(Path(dir).expanduser().absolute())
    elif os.environ.get("WANDB_DIR"):
        parent = None  # wandb honours WANDB_DIR itself
    else:
        parent = str(sweep_dir.absolute())
    if parent is not None:
        Path(parent).mkdir(parents=True, exist_ok=True)
    names = datasets(runs)
    kwargs: dict[str, Any] = {
        "project": project,
        "entity": entity,
        "group": group or sweep_id(sweep_dir),
        "job_type": REPORT_JOB_TYPE,
        "name": REPORT_RUN_NAME,
        "dir": parent,
        "tags": ["report", *names],
        "config": {"sweep_dir": str(sweep_dir.resolve()), "runs": len(runs), "datasets": names},
        "reinit": "finish_previous",
    }
    settings = wandb.Settings(init_timeout=float(init_timeout), quiet=True)
    run = None
    if resolved == "online":
        try:
            run = wandb.init(mode="online", settings=settings, **kwargs)
        except Exception as exc:
            log.warning("W&B online init failed (%s); logging the report offline instead.", exc)
            resolved = "offline"
    if run is None:
        run = wandb.init(mode="offline", settings=settings, **kwargs)
    try:
        payload: dict[str, Any] = {
            "summary_table": wandb.Table(columns=list(CSV_COLUMNS), data=table_data(runs))
        }
        payload["statistics_table"] = wandb.Table(
            columns=list(SUMMARY_COLUMNS),
            data=[[config_row(g).get(c, "") for c in SUMMARY_COLUMNS] for g in config_groups(runs)],
        )
        figures = (
            ("degradation", DEGRADATION_PNG),
            ("gradients", GRADIENTS_PNG),
            ("layer_responses", RESPONSES_PNG),
        )
        for key, filename in figures:
            image = sweep_dir / filename
            if image.is_file():
                payload[key] = wandb.Image(str(image))
        run.log(payload)
        run.summary["verdict"] = headline(runs).replace("**", "")
        run.summary["runs"] = len(runs)
        for status in ("completed", "failed", "diverged", "incomplete"):
            run.summary[f"runs_{status}"] = sum(r.status == status for r in runs)
        sync_dir = str(run.settings.sync_dir)
        info = {
            "mode": resolved,
            "run_id": run.id,
            "dir": sync_dir,
            "sync": f"wandb sync {shlex.quote(sync_dir)}" if resolved == "offline" else None,
        }
    finally:
        run.finish()
    if info["sync"]:
        log.info("W&B report run saved offline; upload it with: %s", info["sync"])
    return info
