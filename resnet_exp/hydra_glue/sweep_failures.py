"""Failures of a sweep as they happen: one line per failed job, a table at the end, fail-fast.

Hydra's basic sweeper re-raises the first failed job's exception only after every job has ended,
as a traceback (Hydra issues #2284, #2824). Instead, a failing job prints one line the moment it
fails (:func:`job_failed`, in the job's own process, so in every launcher), our sweeper
(``hydra_plugins/resnet_exp_launcher/_sweeper.py``) collects the failed jobs without raising, and
the entry point ends the sweep with a table of them and exit 1 (:func:`finish`).

``hydra.sweeper.fail_fast=true``: the first job that fails leaves a marker file in the sweep folder;
every job that starts after it sees the marker, trains nothing and returns :class:`NotStarted`
(its folder holds no record, so ``status`` lists it as ``pending`` and the same command without
``fail_fast`` runs it). Jobs already running finish. A marker is per launch: the sweeper removes a
stale one before it launches anything.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from resnet_exp.tracking.record import JOB_LOG

if TYPE_CHECKING:
    from resnet_exp.hydra_glue.job import JobFacts

log = logging.getLogger("resnet_exp")

#: In the sweep folder while a fail-fast sweep has seen a failure; holds the failed job's name.
STOP_MARKER = ".fail_fast_stop"
#: The job's log file (``hydra.job.name: resnet_exp`` in conf/config.yaml).
FAIL_FAST_SWITCH = "hydra.sweeper.fail_fast=true"


@dataclass(frozen=True)
class NotStarted:
    """What a job returns to the sweeper when fail-fast kept it from starting."""

    reason: str


def distinguishing(job: list[str], jobs: list[list[str]]) -> str:
    """The overrides that tell ``job`` apart from the sweep's other jobs (``seed=1``), or all of
    them when nothing does."""
    shared = set.intersection(*(set(j) for j in jobs)) if jobs else set()
    own = [o for o in job if o not in shared]
    return ",".join(own or job) or "default"


@dataclass(frozen=True)
class FailedJob:
    job: str  # its overrides, as in the job's folder and the report
    error: str  # "Type: first line"
    log_path: str


@dataclass
class SweepOutcome:
    """What the sweeper saw; read by :func:`finish` once Hydra is done."""

    sweep_dir: str
    jobs: int = 0
    failed: list[FailedJob] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)
    fail_fast: bool = False


_outcome: SweepOutcome | None = None


def record_outcome(outcome: SweepOutcome) -> None:
    global _outcome
    _outcome = outcome


def one_line(error: BaseException) -> str:
    """``Type: first line of the message`` (at most 200 characters of it)."""
    from resnet_exp.failures import user_error

    shown = user_error(error) or error
    first = (str(shown).strip().splitlines() or [""])[0][:200]
    return f"{type(shown).__name__}: {first}" if first else type(shown).__name__


def fail_fast_on() -> bool:
    """Whether this job's sweep was started with ``hydra.sweeper.fail_fast=true``."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    return bool(OmegaConf.select(HydraConfig.get().sweeper, "fail_fast", default=False))


def job_failed(job: JobFacts, error: BaseException) -> None:
    """In the failing job: its traceback to its log file only, one line on stderr, and under
    fail-fast the marker that keeps later jobs from starting."""
    from resnet_exp.failures import log_traceback, user_error

    where = None if user_error(error) is not None else log_traceback(error)
    where = where or job.run_dir / JOB_LOG
    line = f"job failed: {job.name}: {one_line(error)} (log: {where})"
    _to_log_files(line)
    print(line, file=sys.stderr, flush=True)  # the console sees it once, from here
    if job.sweep_dir is not None and fail_fast_on():
        try:
            (job.sweep_dir / STOP_MARKER).write_text(job.name + "\n", encoding="utf-8")
        except OSError as exc:  # the sweep goes on; the job's own failure is what matters
            log.warning("could not write the fail-fast marker (%s)", exc)


def _to_log_files(line: str) -> None:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(log.makeRecord(log.name, logging.ERROR, __file__, 0, line, (), None))


def not_started_reason(job: JobFacts) -> str | None:
    """Why this job must not start (a fail-fast sweep already saw a failure), else None."""
    if job.sweep_dir is None or not fail_fast_on():
        return None
    try:
        failed = (job.sweep_dir / STOP_MARKER).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return f"not started: {FAIL_FAST_SWITCH} and job {failed} failed"


def clear_marker(sweep_dir: Path) -> None:
    """Before a launch: a marker from an earlier fail-fast launch stops nothing now."""
    (sweep_dir / STOP_MARKER).unlink(missing_ok=True)


def failure_table(failed: list[FailedJob]) -> str:
    """Plain text, one row per failed job, columns aligned."""
    rows = [("job", "error", "log")] + [(f.job, f.error, f.log_path) for f in failed]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(f"  {r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}".rstrip() for r in rows)


def summary_text(outcome: SweepOutcome, explicit_sweep_dir: bool) -> str:
    """What the sweep prints last when a job failed or did not start."""
    lines = []
    if outcome.failed:
        n = len(outcome.failed)
        lines.append(f"sweep {outcome.sweep_dir}: {n} of {outcome.jobs} jobs failed:")
        lines.append(failure_table(outcome.failed))
    if outcome.not_started:
        n = len(outcome.not_started)
        again = "the same command without hydra.sweeper.fail_fast=true"
        if not explicit_sweep_dir:
            again += f" and with hydra.sweep.dir={outcome.sweep_dir}"
        lines.append(
            f"{n} job{'s' if n > 1 else ''} not started ({FAIL_FAST_SWITCH} stopped the sweep "
            f"after the first failure): {again} runs {'them' if n > 1 else 'it'} and skips the "
            "completed ones."
        )
    return "\n".join(lines)


def finish(explicit: bool) -> None:
    """After Hydra returned: the table of failed jobs and exit 1, when there were any.
    ``explicit``: the user named the sweep folder (hydra.sweep.dir=...) on the command line."""
    outcome = _outcome
    if outcome is None or not (outcome.failed or outcome.not_started):
        return
    print(summary_text(outcome, explicit), file=sys.stderr, flush=True)
    raise SystemExit(1)
