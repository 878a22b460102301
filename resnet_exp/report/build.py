"""Build every sweep-report file in one call (each atomically, so jobs rebuilding at once never
leave a torn file), and optionally log the report to W&B through the training runs' client.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resnet_exp.errors import UserError
from resnet_exp.report.aggregate import CSV_COLUMNS, RunResult, collect_runs, csv_cells, datasets
from resnet_exp.report.figures import FIGURES
from resnet_exp.report.html import write_html
from resnet_exp.report.markdown import write_report
from resnet_exp.report.study import SUMMARY_COLUMNS, config_groups, config_row, write_summary_csv
from resnet_exp.report.verdict import headline
from resnet_exp.tracking import wandb_client
from resnet_exp.tracking.facts import WANDB_INIT_TIMEOUT_S, WANDB_PROJECT
from resnet_exp.tracking.names import sweep_id
from resnet_exp.tracking.record import (
    COMPLETED,
    DIVERGED,
    FAILED,
    HYDRA_DIR,
    INCOMPLETE,
    REPORT_HTML,
    REPORT_MD,
    SUMMARY_CSV,
    SUMMARY_JSON,
)

log = logging.getLogger("resnet_exp.report")

REPORT_RUN_NAME = "report"
REPORT_JOB_TYPE = "report"


class ReportError(UserError):
    """The report cannot be built (no such directory, no runs in it)."""


@dataclass
class ReportResult:
    """What `build_report` wrote (`paths`: summary_csv, `<name>_png` per figure, report_md,
    report_html) and from which runs; `plotted` holds the data behind each figure, by name."""

    paths: dict[str, Path]
    runs: list[RunResult]
    plotted: dict[str, dict[str, Any]] = field(default_factory=dict)


def build_report(sweep_dir: str | os.PathLike[str]) -> ReportResult:
    """(Re)build every report file in `sweep_dir`, whatever state its jobs are in; `ReportError`
    when it is not a directory or holds no job directories."""
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
            f"holds Hydra's {HYDRA_DIR}/ folder or a {SUMMARY_JSON}; none of its subdirectories "
            "does. Pass a sweep directory such as outputs/multirun/<date>/<time>, or wait until "
            "its first job has started."
        )
    paths = {
        "summary_csv": sweep_dir / SUMMARY_CSV,
        **{figure.path_key: sweep_dir / figure.file for figure in FIGURES},
        "report_md": sweep_dir / REPORT_MD,
        "report_html": sweep_dir / REPORT_HTML,
    }
    write_summary_csv(runs, paths["summary_csv"])
    plotted = {figure.name: figure.plot(runs, paths[figure.path_key]) for figure in FIGURES}
    write_report(runs, sweep_dir)
    write_html(runs, sweep_dir)
    return ReportResult(paths=paths, runs=runs, plotted=plotted)


def logger_settings(logger: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`log_report_to_wandb`'s keyword arguments from a `logger` config node, or None when W&B is
    off (`logger=none`: its node keeps the schema's `mode` but targets the NullLogger;
    `logger.mode=disabled`)."""
    if not isinstance(logger, Mapping) or logger.get("mode") is None:
        return None
    mode = str(logger.get("mode")).lower()
    if mode == "disabled" or str(logger.get("_target_", "")).endswith(".NullLogger"):
        return None
    return {
        "project": logger.get("project") or WANDB_PROJECT,
        "mode": mode,
        "group": logger.get("group") or None,
        "entity": logger.get("entity") or None,
        "dir": logger.get("dir") or None,
        "init_timeout": logger.get("init_timeout") or WANDB_INIT_TIMEOUT_S,
    }


def log_report_to_wandb(
    sweep_dir: str | os.PathLike[str], runs: Sequence[RunResult], project: str = WANDB_PROJECT,
    group: str | None = None, mode: str = "auto", *, entity: str | None = None,
    dir: str | os.PathLike[str] | None = None, init_timeout: float = WANDB_INIT_TIMEOUT_S,
) -> dict[str, Any] | None:  # fmt: skip
    """Log the report to the sweep's one W&B report run (named "report", job_type "report", its
    id derived from the sweep: every build updates it) in group `group`, else the sweep's id
    (also its tag and `sweep` key, as the training runs'): the tables, figures and headline; its
    files go to `dir`, else $WANDB_DIR, else the sweep directory. Returns mode/run_id/dir/sync;
    never raises (a W&B problem is a warning and None: the report files are what matters)."""
    sweep_dir, runs = Path(sweep_dir), list(runs)
    try:
        mode, init_timeout = wandb_client.checked_settings(mode or "auto", init_timeout)
        resolved, _why = wandb_client.resolve_mode(mode, init_timeout)
        if resolved == "disabled":
            log.info("W&B is disabled; the sweep report is not logged to W&B.")
            return None
        wandb = wandb_client.import_wandb()  # slow to import, and not needed for the files
        kwargs = _report_run_kwargs(sweep_dir, runs, project, group, entity, dir)
        opened = wandb_client.open_run(wandb, resolved, init_timeout, kwargs)
        if opened.online_error is not None:
            log.warning("W&B online init failed (%s); logging the report offline instead.",
                        opened.online_error)  # fmt: skip
        try:
            opened.run.log(_report_payload(wandb, sweep_dir, runs))
            summary = opened.run.summary  # the headline verdict and the run counts by status
            summary["verdict"], summary["runs"] = headline(runs).replace("**", ""), len(runs)
            for status in (COMPLETED, FAILED, DIVERGED, INCOMPLETE):
                summary[f"runs_{status}"] = sum(r.status == status for r in runs)
            info = wandb_client.run_info(opened.run, opened.mode)
        finally:
            opened.run.finish()
    except Exception as exc:
        log.warning("Could not log the sweep report to W&B (%s: %s); the report files are "
                    "unaffected.", type(exc).__name__, exc)  # fmt: skip
        return None
    if info["sync"]:
        log.info("W&B report run saved offline; upload it with: %s", info["sync"])
    return info


def _report_run_kwargs(
    sweep_dir: Path, runs: list[RunResult], project: str, group: str | None, entity: str | None,
    dir: str | os.PathLike[str] | None,
) -> dict[str, Any]:  # fmt: skip
    """`wandb.init`'s arguments for the report run; its files go to `dir`, else $WANDB_DIR (wandb
    reads it itself), else the sweep directory."""
    if dir is not None:
        parent: str | None = str(Path(dir).expanduser().absolute())
    elif os.environ.get("WANDB_DIR"):
        parent = None
    else:
        parent = str(sweep_dir.absolute())
    if parent is not None:
        Path(parent).mkdir(parents=True, exist_ok=True)
    names, sweep = datasets(runs), sweep_id(sweep_dir)
    return {
        "project": project, "entity": entity, "group": group or sweep, "job_type": REPORT_JOB_TYPE,
        "name": REPORT_RUN_NAME, "id": wandb_client.new_run_id(f"report {sweep}"),
        "resume": "allow", "dir": parent, "tags": ["report", sweep[:64], *names],
        "config": {"sweep": sweep, "runs": len(runs), "datasets": names},
        "reinit": "finish_previous",
    }  # fmt: skip


def _report_payload(wandb: Any, sweep_dir: Path, runs: list[RunResult]) -> dict[str, Any]:
    """The report run's one history row: both tables and every figure on disk."""
    statistics = [[config_row(g).get(c, "") for c in SUMMARY_COLUMNS] for g in config_groups(runs)]
    # typed cells: numbers stay numbers, so W&B can plot the table
    table = [list(csv_cells(run).values()) for run in sorted(runs, key=RunResult.sort_key)]
    payload: dict[str, Any] = {
        "summary_table": wandb.Table(columns=list(CSV_COLUMNS), data=table),
        "statistics_table": wandb.Table(columns=list(SUMMARY_COLUMNS), data=statistics),
    }
    for figure in FIGURES:
        image = sweep_dir / figure.file
        if image.is_file():
            payload[figure.wandb_key] = wandb.Image(str(image))
    return payload
