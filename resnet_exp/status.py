"""``python -m resnet_exp.status <sweep or run folder> [--watch]``: which jobs are done, and how.

One table of jobs read from the run records (the report's readers), plus the jobs the sweep
command asked for that have no folder yet (from ``multirun.yaml``; an Optuna search: the trials it
has yet to tell). Exit 0 only when every job completed; 1 otherwise; 2 for no sweep or run.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from resnet_exp.errors import EXIT_USER_ERROR
from resnet_exp.hydra_glue.command import read_sweep_jobs, recorded_sweep_jobs
from resnet_exp.hydra_glue.compose import compose
from resnet_exp.hydra_glue.sweep_failures import STOP_MARKER
from resnet_exp.report.aggregate import RunResult, find_job_dirs, read_run
from resnet_exp.slurm_queue import annotate
from resnet_exp.tracking import identity
from resnet_exp.tracking.folder_lock import in_use
from resnet_exp.tracking.names import shared_overrides
from resnet_exp.tracking.record import (
    COMPLETED,
    DIVERGED,
    FAILED,
    FINISHED,
    INTERRUPTED,
    LOST,
    MULTIRUN_YAML,
    PENDING,
    PRUNED,
    RUNNING,
    STOPPED,
    TERMINATED,
    UNKNOWN,
    RunRecord,
    read_tuned,
)
from resnet_exp.tracking.wandb_secrets import scrub_secrets as scrub

EXIT_NOT_ALL_COMPLETED = 1
_STYLE = {COMPLETED: "green", RUNNING: "cyan", FAILED: "red", DIVERGED: "magenta", UNKNOWN: "red",
          INTERRUPTED: "yellow", TERMINATED: "yellow", LOST: "yellow", PENDING: "dim",
          PRUNED: "dim"}  # fmt: skip


@dataclass
class JobStatus:
    """One row of the table."""

    name: str  # job folder relative to the sweep ("-" for a job with no folder yet)
    overrides: list[str]
    state: str  # completed | running | failed | diverged | interrupted | lost | pending
    detail: str = ""  # running: "epoch 2 of 4, last record 12 s ago"; failed: its error
    epoch: int = 0
    epochs_planned: int | None = None
    run: RunResult | None = None
    queued: bool = False  # SLURM still holds the job (queued or starting): a watch waits for it


def job_status(job_dir: Path, sweep_dir: Path, now: float | None = None) -> JobStatus:
    """The state of one job folder, from its summary.json, metrics.jsonl and Hydra record."""
    now = time.time() if now is None else now
    run = read_run(job_dir, sweep_dir)
    record = RunRecord(job_dir)
    summary = record.read_summary()
    row = JobStatus(run.name, run.overrides, run.status, epochs_planned=run.epochs_planned, run=run)
    row.epoch = len(run.metrics)
    raw = summary.status if summary else None
    if summary is None and record.summary_path.exists():  # damaged: said, never guessed
        row.detail = str(run.error or "")
        return row
    if raw in FINISHED:
        row.epoch = run.epochs or row.epoch
        if raw == FAILED:
            row.detail = str(summary.error or "")
        elif raw == DIVERGED:
            row.detail = f"non-finite loss in epoch {run.epochs}"
        return row
    if raw is None and record.job_error_path.is_file():
        row.state, row.detail = FAILED, str(run.error or "")
        return row
    if raw in STOPPED:  # Ctrl-C, SIGTERM, a SLURM requeue; a pruned trial's study is done with it
        why = summary.stopped_by or "stopped by a signal"
        row.state, row.detail = (
            raw,
            why + ("" if raw == PRUNED else "; the same command resumes it"),
        )
        return row
    # running, or a folder Hydra made for a job that has not written its record yet
    last = max(
        (p.stat().st_mtime for p in (record.metrics_path, record.summary_path) if p.exists()),
        default=None,
    )
    of = f" of {row.epochs_planned}" if row.epochs_planned else ""
    since = f", last record {_duration(now - last)} ago" if last is not None else ""
    if summary is not None and summary.process_gone:
        row.state = LOST
        row.detail = (
            f"process {summary.pid} on {summary.host} is gone after epoch "
            f"{row.epoch}{of}; re-run the sweep command to resume it"
        )
    elif raw is None and (sweep_dir / STOP_MARKER).exists() and not in_use(sweep_dir):
        row.state, row.detail = PENDING, "not started: fail-fast stopped the sweep"
    elif raw is None and not (in_use(job_dir) or in_use(sweep_dir)):
        row.state = LOST
        row.detail = "its process ended before it recorded anything; re-run the command to start it"
    elif raw is None:
        row.state, row.detail = PENDING, "started, no record yet" + since
    else:
        row.state, row.detail = RUNNING, f"epoch {row.epoch}{of} done{since}"
    return row


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@functools.lru_cache(maxsize=4096)
def _planned_identity(job: tuple[str, ...]) -> str | None:
    """A planned job's identity (its config composed as the sweep would), None if it fails."""
    try:
        return identity.identity_of_node(compose(list(job)))
    except Exception:  # a config this command cannot compose: the overrides' text decides
        return None


def sweep_status(folder: Path, now: float | None = None) -> list[JobStatus]:
    """Every job of a sweep (or the one run) in ``folder``: those with a folder, then those the
    sweep command asked for whose identity no folder holds yet (pending)."""
    rows = [job_status(d, folder, now) for d in find_job_dirs(folder)]
    started, held = {frozenset(r.overrides) for r in rows}, set(identity.index(folder))
    search = read_tuned(folder)  # an Optuna search asks its jobs as it goes: none is listed
    for job in recorded_sweep_jobs(folder) if search is None else []:
        if frozenset(job) not in started and _planned_identity(tuple(job)) not in held:
            rows.append(JobStatus("-", list(job), PENDING, "not started"))
    if search is not None and not search.get("done"):
        told = sum(t["value"] is not None for s in search["studies"] for t in s["trials"])
        what = f"trials: {told}/{search.get('n_trials')} told"  # the rest of the Optuna search
        rows.append(JobStatus("-", [what], PENDING, "not asked yet"))
    annotate(folder, rows)  # a SLURM sweep: queued jobs' reasons, jobs SLURM ended unrecorded
    return rows


def exit_code(rows: list[JobStatus]) -> int:
    """0 when there is at least one job and every job completed (or its search pruned it)."""
    return (
        0 if rows and all(r.state in (COMPLETED, PRUNED) for r in rows) else EXIT_NOT_ALL_COMPLETED
    )


def _short(name: str) -> str:
    """A job folder named after its overrides is known by its hash suffix (identity.folder_name)."""
    match = re.search(r"-([0-9a-f]{8})$", name)
    return match.group(1) if match else name


def render(folder: Path, rows: list[JobStatus], problem: str | None = None) -> RenderableType:
    """The table, one line per job at any width (a column too narrow ends in an ellipsis, never a
    word broken across lines): job, state, epoch, errors, time, configuration (the overrides
    that differ between jobs); under it, each job's detail and a damaged record's problem."""
    common = shared_overrides(r.overrides for r in rows)
    counts = {s: sum(r.state == s for r in rows) for s in _STYLE if any(r.state == s for r in rows)}
    # the headline is printed above the table, so a long folder name never wraps the counts
    headline = f"{len(rows)} jobs: " + ", ".join(f"{n} {s}" for s, n in counts.items())
    caption = (
        "errors in %: final train, best val, test at best val; job: its folder, or the "
        "folder's hash suffix (<sweep>/*-<hash>)"
        + ("\ncommon to all jobs: " + " ".join(sorted(common)) if common else "")
    )  # user text (overrides, errors) goes in as Text: never read as markup
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    table.add_column("job", max_width=12)  # job, configuration: narrowed first, one line each
    table.add_column("state", no_wrap=True)
    for name in ("epoch", "train", "val", "test", "time"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("configuration", ratio=1)
    notes = []
    for row in rows:
        run = row.run
        config = " ".join(o for o in row.overrides if o not in common) or "(defaults)"
        epoch = f"{row.epoch}/{row.epochs_planned}" if row.epochs_planned else str(row.epoch or "")
        numbers = ["", "", "", ""]
        if run is not None and row.state != PENDING:
            errors = (run.final_train_err, run.best_val_err, run.test_err_at_best_val)
            numbers = ["" if e is None else f"{e:.2f}" for e in errors]
            numbers.append(_duration(run.wall_time_s) if run.wall_time_s else "")
        epoch = epoch if run is not None else ""
        state = Text(row.state, _STYLE.get(row.state, ""))
        table.add_row(_line(_short(row.name)), state, epoch, *numbers, _line(scrub(config)))
        if row.detail and row.state != PENDING:
            notes.append(Text.assemble(f"{_short(row.name)} ", state, f": {scrub(row.detail)}"))
    if problem:
        notes.append(Text(f"{MULTIRUN_YAML} {problem}; only the jobs with a folder are shown."))
    head = Text(headline, style="bold")
    return Group(head, Text(str(folder), overflow="fold"), table, Text(scrub(caption)), *notes)


def _line(text: str) -> Text:
    """A cell on one line, ending in an ellipsis where its column is too narrow."""
    return Text(text, no_wrap=True, overflow="ellipsis")


def _still_running(folder: Path, rows: list[JobStatus]) -> bool:
    """A job trains, or the sweep's process still holds its folder (pending jobs may start);
    interrupted, lost or pending jobs of a sweep nobody runs any more end the watch."""
    stopped = FINISHED | STOPPED | {LOST, PENDING}
    waiting = any(r.state not in stopped or r.queued for r in rows)
    return waiting or in_use(folder)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m resnet_exp.status",
        description="Each job of a sweep (or a single run): completed, running, failed, diverged, "
        "interrupted/terminated, lost or pending. Exit 0 only when every job completed.",
    )
    parser.add_argument("folder", type=Path, help="e.g. outputs/multirun/<date>/<time>")
    parser.add_argument(
        "--watch", action="store_true", help="refresh until nothing runs any more (Ctrl-C stops)"
    )
    parser.add_argument(
        "--interval", type=float, default=5.0, help="seconds between refreshes (default 5)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    folder: Path = args.folder
    planned, problem = read_sweep_jobs(folder) if folder.is_dir() else ([], None)
    if not folder.is_dir() or not (find_job_dirs(folder) or planned):
        what = "does not exist" if not folder.exists() else "holds no sweep or run"
        what += f" (its {MULTIRUN_YAML} {problem})" if problem else ""
        print(
            f"error: {str(folder)!r} {what}. Give a sweep folder (outputs/multirun/<date>/<time>, "
            "or the hydra.sweep.dir you chose) or a run folder (outputs/<date>/<time>).",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    rows = sweep_status(folder)
    if not args.watch:
        Console().print(render(folder, rows, problem))
        return exit_code(rows)
    try:
        with Live(render(folder, rows, problem), console=Console(), auto_refresh=False) as live:
            while _still_running(folder, rows):
                time.sleep(max(args.interval, 0.05))
                rows = sweep_status(folder)
                live.update(render(folder, rows, problem), refresh=True)
    except KeyboardInterrupt:
        return exit_code(rows)
    _refresh_report(folder, rows)
    return exit_code(rows)


def _refresh_report(folder: Path, rows: list[JobStatus]) -> None:
    """When a watched sweep has ended, rebuild its report from the records: jobs that ended at
    the same moment (a detached SLURM sweep) each rebuilt it from what they saw, so the last
    write may predate another job's record. A problem is a warning, never an error."""
    if not recorded_sweep_jobs(folder) or any(r.state == RUNNING for r in rows):
        return
    try:
        from resnet_exp.report.build import build_report  # heavy (matplotlib): only at the end

        build_report(folder)
    except Exception as exc:  # the table above is the answer; the report is a convenience
        print(f"warning: could not rebuild the sweep report ({exc})", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
