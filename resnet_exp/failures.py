"""What an exception that escaped a run means to the user: a known cause is one paragraph; an
unknown one keeps its traceback in the run's log file and gets one line pointing there."""

from __future__ import annotations

import logging
import sys
import tempfile
import traceback
from pathlib import Path

from omegaconf import DictConfig

from resnet_exp.data.facts import input_side
from resnet_exp.errors import DISK_ERRNOS, EXIT_USER_ERROR
from resnet_exp.hydra_glue.folders import RunFolderGuard
from resnet_exp.hydra_glue.job import JobFacts
from resnet_exp.hydra_glue.sweep_failures import log_traceback
from resnet_exp.tracking.record import DIVERGED, TRAIN_ERR, VAL_ERR, RunFiles, RunRecord, RunSummary
from resnet_exp.training.interrupt import Interrupted

log = logging.getLogger("resnet_exp")

_OOM_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory")


def known_cause(error: BaseException, cfg: DictConfig) -> str | None:
    """One paragraph for a failure whose cause we know (memory, disk), else None."""
    seen: BaseException | None = error
    while seen is not None:
        text = str(seen).lower()
        oom = isinstance(seen, RuntimeError) and any(m in text for m in _OOM_MARKERS)
        if isinstance(seen, MemoryError) or oom:
            return _out_of_memory(seen, cfg)
        if isinstance(seen, OSError) and seen.errno in DISK_ERRNOS:
            where = f" {str(seen.filename)!r}" if seen.filename else ""
            return (
                f"cannot write{where}: {seen.strerror or seen}. The run's files (log, metrics, "
                "summary, checkpoints) must fit on a writable disk; free some space or choose "
                "another hydra.run.dir, then run the same command again: it resumes from the last "
                "checkpoint."
            )
        seen = seen.__cause__ or seen.__context__
    return None


def _out_of_memory(error: BaseException, cfg: DictConfig) -> str:
    d = cfg.data
    side = input_side(d.name, d.resize)
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (
        f"out of memory ({first[:200]}) with images of {side}x{side} "
        f"(data.resize={d.resize}), data.batch_size={d.batch_size}, "
        f"data.eval_batch_size={d.eval_batch_size}, model.depth={cfg.model.depth} on "
        f"trainer.device={cfg.trainer.device}. The whole training split is kept in memory at that "
        "size: lower data.resize (null keeps the dataset's own size), data.batch_size, or "
        "data.train_subset, or use a device with more memory."
    )


# -- what a failure means for the process (single runs exit with a code; sweep jobs raise) --------

EXIT_DIVERGED = 3


def sweeper_result(summary: RunSummary) -> float:
    """What the task returns to Hydra's sweeper: the best validation (or training) error."""
    if summary.status == DIVERGED:
        return float("nan")
    best = summary.best or {}
    return best.get(VAL_ERR, best.get(TRAIN_ERR))


def exit_with(message: str, code: int) -> None:
    log.error("%s", message)
    print(f"error: {message}", file=sys.stderr)
    RunFolderGuard.restore()  # a run refused before it started leaves an existing folder as it was
    sys.exit(code)


def exit_unexpected(cfg: DictConfig, error: BaseException) -> None:
    """A known cause (memory, disk) is one paragraph, exit 2; anything else is one line pointing
    at the traceback, which goes to the run's log file only; exit 1."""
    message = known_cause(error, cfg)
    if message is not None:
        exit_with(message, EXIT_USER_ERROR)
    # An existing folder is put back as it was (so its log too): the traceback goes beside it.
    where = _traceback_file(error) if RunFolderGuard.active else log_traceback(error)
    first = (str(error).strip().splitlines() or [""])[0][:200]
    line = f"error: unexpected {type(error).__name__}: {first}"
    line += f" (traceback in {where})" if where else ""
    log.error(line)
    print(line, file=sys.stderr)
    RunFolderGuard.restore()
    sys.exit(1)


def _traceback_file(error: BaseException) -> Path:
    """The traceback in a file of the temp folder, for a failure that must leave the run folder
    byte-identical."""
    handle, name = tempfile.mkstemp(prefix="resnet_exp-traceback-", suffix=".txt")
    with open(handle, "w") as stream:
        stream.write("".join(traceback.format_exception(error)))
    return Path(name)


def exit_stopped(job: JobFacts, stopped: Interrupted) -> None:
    """Ctrl-C / SIGTERM: the record says so (if the run had begun), one line, exit 128 + signal."""
    record = RunRecord(job.run_dir)
    summary = record.read_summary() or RunSummary()
    if not summary.ended:  # stopped before train() kept the record itself
        summary.status, summary.stopped_by = stopped.status, str(stopped)
        summary.job = summary.job or job.name
        summary.overrides = summary.overrides or list(job.overrides)
        record.write_summary(summary)
    where = "the last checkpoint on disk is kept as it was"
    if stopped.checkpoint:
        where = f"checkpoint saved to {stopped.checkpoint}"
    message = f"{stopped.status} by {stopped}: {where}; run the same command to resume."
    log.warning(message)
    print(message, file=sys.stderr)
    sys.exit(stopped.exit_code)


def diverged(summary: RunSummary, run_dir: Path, lr: float, multirun: bool) -> None:
    """A diverged single run exits 3 with advice; a diverged sweep job is logged and goes on."""
    message = (
        f"run diverged (non-finite training loss or weights in epoch {summary.epochs}); "
        f"status '{DIVERGED}' recorded in {RunFiles(run_dir).summary_path}. Lower "
        f"optimizer.lr (now {lr}) or add scheduler.warmup_steps."
    )
    if not multirun:
        exit_with(message, EXIT_DIVERGED)
    log.error(message)
