"""A sweep's jobs when things go wrong. Hydra's basic sweeper re-raises the first failed job's
exception after every job has ended, as a traceback (Hydra issues #2284, #2824); here a failing
job prints one line when it fails (in its own process, so in every launcher), and the entry point
ends with the failed jobs' table and exit 1. Under fail-fast the first failure leaves a marker in
the sweep folder that keeps later jobs from starting. joblib's loky workers outlive a killed sweep
process and would train beside its re-run, so a worker that sees its sweep process gone stops as
a SIGTERM would (the job checkpoints and records ``terminated``), or exits after a grace period."""

from __future__ import annotations

import logging
import os
import pickle
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from resnet_exp.errors import user_error
from resnet_exp.tracking.record import JOB_LOG, RUNNING, SUMMARY_JSON, RunRecord, pid_alive

log = logging.getLogger("resnet_exp")

#: In the sweep folder while a fail-fast sweep has seen a failure; holds the failed job's name.
STOP_MARKER = ".fail_fast_stop"
PARENT_ENV = "RESNET_EXP_SWEEP_PID"  # host:pid of the process that launched the sweep
POLL_S = 1.0  # how often a worker looks at its parent
GRACE_S = 60.0  # how long an orphaned worker's job may take to stop
FAIL_FAST_SWITCH = "hydra.sweeper.fail_fast=true"


class SweepJob(Protocol):
    """What is read here of a job (``hydra_glue.job.JobFacts``)."""

    run_dir: Path
    sweep_dir: Path | None

    @property
    def name(self) -> str: ...


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
    shown = user_error(error) or error
    first = (str(shown).strip().splitlines() or [""])[0][:200]
    return f"{type(shown).__name__}: {first}" if first else type(shown).__name__


def fail_fast_on() -> bool:
    """Whether this job's sweep was started with ``hydra.sweeper.fail_fast=true``."""
    return bool(OmegaConf.select(HydraConfig.get().sweeper, "fail_fast", default=False))


def job_failed(job: SweepJob, error: BaseException) -> None:
    """In the failing job: its traceback to its log file only, one line on stderr, and under
    fail-fast the marker that keeps later jobs from starting."""
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


class JobKilled(RuntimeError):
    """A sweep job's process ended by a signal (SIGKILL: most likely the out-of-memory killer)."""


def in_own_process(run: Callable[[], Any], job: SweepJob) -> Any:
    """``run()`` in a forked child of this launcher worker, its result or exception handed back:
    a job killed by a signal is a failed job of a worker that lives on, not a dead worker that
    breaks joblib's pool and loses the sweep's other jobs."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the job: it watches its worker and the sweep itself (threads are not forked)
        global _started
        os.close(read)
        _started = False
        try:
            watch_parent()
            outcome = (True, run())
        except BaseException as error:  # SystemExit too: the worker raises it as it was
            outcome = (False, error)
        with os.fdopen(write, "wb") as stream:
            try:
                pickle.dump(outcome, stream)
            except Exception:  # an exception that does not pickle: its line
                pickle.dump((False, RuntimeError(one_line(outcome[1]))), stream)
        logging.shutdown()
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as stream:
        data = stream.read()
    status = os.waitpid(pid, 0)[1]
    if data:
        ok, value = pickle.loads(data)
        if ok:
            return value
        raise value
    signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    oom = ", likely out of memory" if signum == signal.SIGKILL else ""
    error = JobKilled(
        f"killed by signal {signum}{oom}" if signum else f"ended with exit status {status >> 8}"
    )
    RunRecord(job.run_dir).mark_failed(f"{type(error).__name__}: {error}", job.name)
    job_failed(job, error)
    raise error


def _to_log_files(line: str) -> None:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(log.makeRecord(log.name, logging.ERROR, __file__, 0, line, (), None))


def log_traceback(error: BaseException) -> Path | None:
    """Write ``error``'s traceback to the log files only (not the console); returns the first."""
    text = "".join(traceback.format_exception(error))
    written = None
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                handler.stream.write(f"unexpected error, traceback:\n{text}")
                handler.flush()
            finally:
                handler.release()
            written = written or Path(handler.baseFilename)
    return written


def not_started_reason(job: SweepJob) -> str | None:
    """Why this job must not start (a fail-fast sweep already saw a failure), else None."""
    if job.sweep_dir is None or not fail_fast_on():
        return None
    try:
        failed = (job.sweep_dir / STOP_MARKER).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return f"not started: {FAIL_FAST_SWITCH} and job {failed} failed"


def summary_text(outcome: SweepOutcome, explicit_sweep_dir: bool) -> str:
    """What the sweep prints last when a job failed or did not start."""
    lines = []
    if outcome.failed:
        n = len(outcome.failed)
        lines.append(f"sweep {outcome.sweep_dir}: {n} of {outcome.jobs} jobs failed:")
        rows = [("job", "error", "log")] + [(f.job, f.error, f.log_path) for f in outcome.failed]
        wide = [max(len(r[i]) for r in rows) for i in range(2)]  # columns aligned
        lines += [f"  {r[0]:<{wide[0]}}  {r[1]:<{wide[1]}}  {r[2]}".rstrip() for r in rows]
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


# -- workers that end with the sweep's process -----------------------------------------------------

_started = False
_sweep: str | None = None  # the sweep folder this process launched
_orphaned = threading.Event()


def mark_parent(sweep_dir: str | None = None) -> None:
    """In the launching process: who the workers it starts must outlive no longer than.
    ``sweep_dir``: the sweep folder this process launches (None for a single run)."""
    global _sweep
    os.environ[PARENT_ENV] = f"{socket.gethostname()}:{os.getpid()}"
    _sweep = sweep_dir


def launched_sweep() -> str | None:
    """The sweep folder this process launched (its jobs may be training in workers), or None."""
    return _sweep


def record_killed_jobs(sweep_dir: Path, status: str, why: str) -> None:
    """After the launcher killed its workers (joblib does on Ctrl-C): each job of ``sweep_dir``
    whose record's process is gone gets ``status`` (its last checkpoint on disk is where the same
    command resumes it). A job whose process is of this process group (Ctrl-C reached it too)
    and still lives is waited for, at most ``GRACE_S``: it records itself, or is killed."""
    waiting = [RunRecord(path.parent) for path in Path(sweep_dir).glob(f"*/{SUMMARY_JSON}")]
    deadline = time.monotonic() + GRACE_S
    while waiting and time.monotonic() < deadline:
        summaries = [(record, record.read_summary()) for record in waiting]  # None: torn, foreign
        for record, summary in summaries:
            if summary is not None and summary.process_gone:
                summary.status, summary.stopped_by = status, why
                record.write_summary(summary)
        waiting = [record for record, summary in summaries if _ending_in_group(summary)]
        time.sleep(0.1 if waiting else 0)


def _ending_in_group(summary: Any) -> bool:
    if summary is None or summary.status != RUNNING or not summary.pid or summary.process_gone:
        return False
    try:
        return summary.host == socket.gethostname() and os.getpgid(summary.pid) == os.getpgrp()
    except OSError:  # gone since
        return False


def watch_parent() -> None:
    """In a launcher's worker (a no-op in the launching process, and after the first call)."""
    global _started
    host, _, pid = os.environ.get(PARENT_ENV, "").rpartition(":")
    parent = int(pid) if pid.isdigit() else 0
    # Only a worker on the parent's machine: a SLURM job inherits the variable on another node.
    if _started or parent in (0, os.getpid()) or host != socket.gethostname():
        return
    _started = True
    args = (parent, os.getppid())
    threading.Thread(target=_watch, args=args, name="parent-watch", daemon=True).start()


def exit_if_orphaned() -> None:
    """After a job: a worker whose sweep process is gone ends now instead of waiting for work."""
    if _orphaned.is_set():
        logging.shutdown()
        os._exit(128 + signal.SIGTERM)


def _watch(parent: int, ppid: int) -> None:
    while pid_alive(parent) and os.getppid() == ppid:  # a dead parent's children are re-parented
        time.sleep(POLL_S)
    _orphaned.set()
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(GRACE_S)
    os._exit(128 + signal.SIGTERM)
