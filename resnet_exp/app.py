"""The entry point: compose -> instantiate -> train (:mod:`resnet_exp.session`'s steps) -> record.

:func:`main` (Hydra's task function) decides what a failure means for the process: a single run
exits with a code; a multirun job raises, so the sweep goes on and its report marks the job.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from resnet_exp import caches, failures
from resnet_exp.config_dir import config_dir
from resnet_exp.errors import EXIT_USER_ERROR, user_error
from resnet_exp.hydra_glue import gpu_slots, preflight, sweep_failures
from resnet_exp.hydra_glue.command import parse_command
from resnet_exp.hydra_glue.folders import RunFolderGuard, job_folder_lock
from resnet_exp.hydra_glue.job import JobFacts, current_job, start_torchrun
from resnet_exp.hydra_glue.register import register
from resnet_exp.tracking.identity import identity_key
from resnet_exp.tracking.record import DIVERGED, RunRecord, RunSummary
from resnet_exp.training import threads
from resnet_exp.training.facts import is_rank_zero, launched_by_torchrun
from resnet_exp.training.interrupt import Interrupted, StopFlag, end_start_up_on_signals
from resnet_exp.training.job_plan import stored_result
from resnet_exp.validation import validate

log = logging.getLogger("resnet_exp")


def train(cfg: DictConfig, job: JobFacts, stop: StopFlag | None = None) -> RunSummary:
    """Train one configuration; its summary is also written to ``summary.json``. ``stop``: the
    SIGINT/SIGTERM flag the training loop looks at between steps."""
    # torch and the training stack load only once a run trains: a typo, `--cfg job` and a
    # finished sweep job stay well under a second
    from resnet_exp import session

    started, config = time.time(), OmegaConf.to_container(cfg, resolve=True)
    summary = session.new_summary(cfg, job, key=identity_key(config))  # the checkpoints' key too
    try:
        device = session.set_up_process(cfg, job, summary)  # threads (once), device, seed
        trainer, on_completed = session.build_trainer(cfg, job, device, summary, started, stop)
        rows = session.resume_or_start(cfg, trainer, summary)
        session.start_logger(cfg, job, trainer, summary, config)
        run = session.Run(trainer, summary, rows, on_completed, cfg.trainer.debug_checksum)
        return session.fit_and_record(run)
    finally:
        gpu_slots.release()  # the slot (if any) is free for the sweep's next job


# -- what a failure means for the process ---------------------------------------------------------


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def main(cfg: DictConfig) -> float | sweep_failures.NotStarted | None:
    job = current_job()
    if job.multirun:  # before torch is imported: skipping a finished job costs well under 1 s
        sweep_failures.watch_parent()  # a joblib worker ends with the sweep's process
        not_started = sweep_failures.not_started_reason(job)
        if not_started is not None:  # fail-fast: an earlier job of this sweep failed
            log.warning("%s", not_started)
            return sweep_failures.NotStarted(not_started)
        stored = stored_result(OmegaConf.to_container(cfg, resolve=True), job.run_dir, job.name,
                               job.sweep_dir)  # fmt: skip
        if stored is not None:
            return failures.sweeper_result(stored)
    try:
        if job.parallel_jobs > 1:  # a joblib worker: the job in a child the OOM killer may kill
            return sweep_failures.in_own_process(lambda: _locked_run(cfg, job), job)
        return _locked_run(cfg, job)
    finally:
        sweep_failures.exit_if_orphaned()  # a worker whose sweep process died ends with its job


def _locked_run(cfg: DictConfig, job: JobFacts) -> float | None:
    with job_folder_lock(job.run_dir, job.multirun):  # one writer per job folder
        return _run(cfg, job)


def _run(cfg: DictConfig, job: JobFacts) -> float | None:
    stop = StopFlag()
    try:
        with stop:
            validate(cfg, job.run_dir)  # before torch is even imported: a typo costs a second
            # torch: only now (the process group torchrun's ranks joined, for one run folder)
            from resnet_exp.training import distributed

            job.run_dir = distributed.agree_on_run_dir(distributed.current(), job.run_dir)
            summary = train(cfg, job, stop)
    except Interrupted as stopped:
        failures.exit_stopped(job, stopped)
    except Exception as error:
        if is_rank_zero():  # under torchrun, rank 0 keeps the record
            RunRecord(job.run_dir).mark_failed(f"{type(error).__name__}: {error}", job.name,
                                               job.overrides)  # fmt: skip
        if job.multirun:
            sweep_failures.job_failed(job, error)  # one line now; the table at the sweep's end
            raise  # a sweep goes on (the sweeper notes the job, the report marks it)
        known = user_error(error)
        if known is not None:
            failures.exit_with(str(known), EXIT_USER_ERROR)
        failures.exit_unexpected(cfg, error)
    if summary.status == DIVERGED:
        failures.diverged(summary, job.run_dir, cfg.optimizer.lr, job.multirun)
    return failures.sweeper_result(summary)


def entry() -> None:
    """Console script and ``python -m resnet_exp``."""
    register()  # our schemas, resolvers and plugins, before Hydra reads the command
    caches.keep_private()  # matplotlib's and inductor's caches: never in the user's home
    threads.wait_passively()  # before torch loads OpenMP, here and in every worker it starts
    end_start_up_on_signals()  # SIGTERM/SIGHUP before the run's handlers end it like Ctrl-C
    try:
        _start(sys.argv[1:])
    except KeyboardInterrupt:  # Ctrl-C before the run's own handler is in place
        _exit_stopped_before_training(Interrupted(signal.SIGINT))
    except Interrupted as stopped:  # SIGTERM/SIGHUP likewise
        _exit_stopped_before_training(stopped)


def _exit_stopped_before_training(stopped: Interrupted) -> None:
    """One line and the shell's status for the signal (128 + its number); a sweep's process
    (waiting on its workers) records the jobs whose worker was killed before it could."""
    name = signal.Signals(stopped.signum).name
    sweep_dir = sweep_failures.launched_sweep()
    if sweep_dir is not None:  # the running jobs stop at their next step and record it; jobs
        # whose worker the launcher killed before they could are recorded here
        ctrl_c = stopped.signum == signal.SIGINT
        why = "SIGINT (Ctrl-C to the sweep)" if ctrl_c else f"{name} to the sweep"
        sweep_failures.record_killed_jobs(Path(sweep_dir), stopped.status, why)
        message = (
            f"{stopped.status} by {name}: the sweep's running jobs stop at their next step and "
            "record it; run the same command to resume the sweep."
        )
    else:
        message = f"{stopped.status} by {name} during start-up, before training began."
    print(message, file=sys.stderr)
    sys.exit(stopped.exit_code)


def _start(args: list[str]) -> None:
    command = parse_command(args)  # the one reading of the command line every check below uses
    if command.dry_sweep:
        sys.exit(preflight.dry_sweep(command))
    preflight.preflight(command)  # every job composes and validates before Hydra writes anything
    named_sweep_dir = command.sweep_dir is not None  # as typed, before the folder is claimed
    command = preflight.claim_folders(command)  # its own folder, the right kind, one writer
    sweep_failures.mark_parent(command.sweep_dir if command.multirun else None)
    sys.argv[1:] = command.args
    try:
        if not launched_by_torchrun():
            main()
            sweep_failures.finish(named_sweep_dir)  # failed jobs: their table, exit 1
            return
        sys.argv[1:] = start_torchrun(list(command.args))  # join the group before Hydra starts
        from resnet_exp.training import distributed  # torch: only for a torchrun rank

        try:
            main()
        finally:
            distributed.shutdown()  # leave the process group
    finally:  # whatever ended a run before it (re)started: its existing folder is as it was
        RunFolderGuard.restore()


if __name__ == "__main__":
    entry()
