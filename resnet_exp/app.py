"""The entry point: compose -> instantiate -> train -> record.

:func:`train` is :func:`build_run` (the composed config turned into a model, data, optimizer,
scheduler and logger in one resumed Trainer) plus the fit (:func:`resnet_exp.session.fit_and_record`
records how it ended); :func:`main` (Hydra's task function) decides what a failure means for the
process (a single run: an exit code; a multirun job: raise, so the sweep goes on and its report
marks the job). Everything Hydra-specific besides ``@hydra.main`` lives in
:mod:`resnet_exp.hydra_glue`.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig, OmegaConf

from resnet_exp import failures
from resnet_exp.config_dir import config_dir
from resnet_exp.errors import EXIT_USER_ERROR
from resnet_exp.hydra_glue import sweep_failures
from resnet_exp.hydra_glue.job import JobFacts, current_job
from resnet_exp.hydra_glue.plugins import register_plugins
from resnet_exp.hydra_glue.preflight import RunFolderGuard
from resnet_exp.hydra_glue.register import register_configs
from resnet_exp.tracking.identity import identity_key
from resnet_exp.tracking.record import DIVERGED, RunRecord, RunSummary
from resnet_exp.training.facts import is_rank_zero
from resnet_exp.training.interrupt import (
    Interrupted,
    StopFlag,
    end_start_up_on_signals,
)

if TYPE_CHECKING:
    from resnet_exp.session import Run
    from resnet_exp.training.loop import Trainer

register_configs()
register_plugins()
log = logging.getLogger("resnet_exp")


def train(cfg: DictConfig, job: JobFacts, stop: StopFlag | None = None) -> RunSummary:
    """Train one configuration; its summary is also written to ``summary.json``. ``stop``: the
    SIGINT/SIGTERM flag the training loop looks at between steps."""
    from resnet_exp.hydra_glue import gpu_slots
    from resnet_exp.session import fit_and_record

    try:
        run = build_run(cfg, job, stop)
        try:
            return fit_and_record(run)
        finally:
            if run.lease is not None:
                run.lease.release()
    finally:
        gpu_slots.release()  # the slot (if any) is free for the sweep's next job


def build_run(cfg: DictConfig, job: JobFacts, stop: StopFlag | None = None) -> Run:
    """Everything one training run needs, built from the config and resumed where an earlier
    attempt stopped: the process's threads and device, the trainer and its logger, started."""
    import torch

    from resnet_exp.session import Run
    from resnet_exp.training import core_lease, distributed

    started, dist = time.time(), distributed.current()
    config = OmegaConf.to_container(cfg, resolve=True)
    record = distributed.record_for(dist, job.run_dir)
    summary = RunSummary(dataset=cfg.data.name, seed=cfg.seed, job=job.name,
                         overrides=job.overrides, epochs_planned=cfg.trainer.epochs,
                         host=socket.gethostname(), pid=os.getpid())  # fmt: skip
    device, lease = _set_up_process(cfg, job, summary)
    try:
        trainer, measure = _build_trainer(cfg, job, device, record, summary, stop)
        if lease is not None:  # give threads back / take them when other runs start / end
            trainer.between_steps = core_lease.keep_fair(lease, torch.set_num_threads)
        trainer.wall_start = started
        # the config's key is stored with each checkpoint, so a resume finds one of this config
        key = summary.config_key = trainer.meta["config"] = identity_key(config)
        rows = _resume(cfg, trainer, summary, key)
        _start_logger(cfg, job, trainer, summary, config)
    except BaseException:
        if lease is not None:
            lease.release()
        raise
    return Run(trainer, summary, rows, measure, checksum=cfg.trainer.debug_checksum, lease=lease)


def _set_up_process(cfg: DictConfig, job: JobFacts, summary: RunSummary) -> tuple[Any, Any]:
    """This process's torch threads (a share of the cores, or its GPU slot's), its device and
    its seed; and the core lease it holds (None when it takes a fixed number of threads)."""
    import torch

    from resnet_exp.hydra_glue import gpu_slots
    from resnet_exp.training import core_lease, distributed
    from resnet_exp.training.device import resolve_device

    dist = distributed.current()
    threads = distributed.thread_share(cfg.trainer.num_threads, job.parallel_jobs, dist)
    cores = distributed.available_cpus()
    if threads and threads > cores:  # oversubscribed threads only slow each other down
        note = (
            f"trainer.num_threads={threads} is more than the {cores} CPU cores this process may "
            f"use; using {cores} threads."
        )
        log.warning(note)
        summary.warnings.append(note)
        threads = cores
    lease = None
    slot = gpu_slots.for_job(str(cfg.trainer.device), job.sweep_dir, dist.enabled)
    if slot is not None:  # a joblib sweep over the node's GPUs: this job's GPU and cores
        gpu_slots.pin(slot, torch.set_num_threads)
    elif core_lease.wanted(cfg.trainer.num_threads, os.environ.get("SLURM_CPUS_PER_TASK"),
                           dist.local_world_size):  # fmt: skip
        lease = core_lease.take(cores, threads, torch.set_num_threads)  # logs the share and why
    elif threads:
        torch.set_num_threads(threads)
        log.info("torch intra-op threads: %d", threads)
    device = distributed.device_for(
        dist, resolve_device(slot.device if slot else cfg.trainer.device)
    )
    torch.manual_seed(cfg.seed)
    return device, lease


def _build_trainer(
    cfg: DictConfig, job: JobFacts, device: Any, record: RunRecord, summary: RunSummary,
    stop: StopFlag | None,
) -> tuple[Trainer, Callable[[], None]]:  # fmt: skip
    """The model, data, optimizer, schedule and logger in one Trainer; and the measurement of
    layer responses (Fig. 7) that runs after a completed fit."""
    import torch

    from resnet_exp.hydra_glue.instantiate import instantiate_node
    from resnet_exp.models.profile import count_flops
    from resnet_exp.session import log_every_steps
    from resnet_exp.summary import input_shape
    from resnet_exp.tracking.wandb_logger import NullLogger
    from resnet_exp.training import distributed
    from resnet_exp.training.loop import LoopSettings, Trainer
    from resnet_exp.training.responses import measure_and_write as measure_responses
    from resnet_exp.training.speed import choose as choose_speed

    dist, trainer_cfg = distributed.current(), cfg.trainer
    model = instantiate_node(cfg.model, "model")  # first: a bad depth fails before data is read
    summary.model = {**model.describe(), "flops": count_flops(model, input_shape(cfg))}
    data = instantiate_node(cfg.data, "data")
    data.setup(device=device, seed=cfg.seed, rank=dist.rank, world_size=dist.world_size)
    total_steps = trainer_cfg.epochs * data.steps_per_epoch
    speed = choose_speed(trainer_cfg, device, total_steps)  # `auto` resolved for this device
    summary.speed, summary.data = speed.as_dict(), data.describe()
    model = model.to(device)
    if speed.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model, trained = distributed.wrap_model(model, dist, device, trainer_cfg.sync_bn)
    optimizer = instantiate_node(cfg.optimizer, "optimizer")(model.parameters())
    scheduler = instantiate_node(cfg.scheduler, "scheduler")(optimizer, total_steps=total_steps)
    logger = instantiate_node(cfg.logger, "logger") if dist.is_main else NullLogger()
    settings = LoopSettings(epochs=trainer_cfg.epochs, precision_dtype=speed.dtype,
                            channels_last=speed.channels_last, progress=trainer_cfg.progress,
                            checkpoint_every_steps=trainer_cfg.checkpoint_every_steps,
                            log_every_steps=log_every_steps(trainer_cfg.log_every_steps,
                                                            trainer_cfg.epochs, data))  # fmt: skip
    trainer = Trainer(
        model, data, optimizer, scheduler, device, record, logger, settings,
        forward=torch.compile(trained) if speed.compile else trained, parts=model.parts(),
        dist=dist if dist.enabled else None, stop=stop,
    )  # fmt: skip

    def measure_layer_responses() -> None:  # Fig. 7, on rank 0 after a completed run
        if dist.is_main:
            measure_responses(model, data, trainer_cfg.response_images, job.run_dir)

    return trainer, measure_layer_responses


def _resume(cfg: DictConfig, trainer: Trainer, summary: RunSummary, key: str) -> list[dict]:
    """Continue from the checkpoint rank 0 picks (every rank the same one), or start afresh;
    the summary says which, and is written. Returns the metrics rows already done."""
    from resnet_exp.atomic import remove_leftovers
    from resnet_exp.session import wandb_run_id
    from resnet_exp.training import distributed, resume

    record, device = trainer.record, trainer.device
    found: dict = {}
    last = record.last_checkpoint
    path = distributed.agree_on_resume(
        distributed.current(), lambda: resume.pick(found, cfg.trainer.resume, last, device)
    )
    start = resume.start_or_resume(trainer, record, path, found.get("state"), key=key,
                                   setting=str(cfg.trainer.resume))  # fmt: skip
    RunFolderGuard.started()  # from here on the run has (re)started in its folder
    if distributed.current().is_main:  # temp files of a writer killed mid-write (this process
        # holds the folder)
        leftovers = remove_leftovers(record.run_dir) + remove_leftovers(record.checkpoint_dir)
        for leftover in leftovers:
            log.info("removed %s, left by a write that was killed", leftover)
    summary.attempts, summary.resumed_from = start.attempts, start.resumed_from
    summary.wall_time_s = trainer.wall_time_s() if start.resumed_from else None
    summary.wandb_run_id = wandb_run_id(str(cfg.trainer.resume), start.previous)
    record.write_summary(summary)
    return start.rows


def _start_logger(
    cfg: DictConfig, job: JobFacts, trainer: Trainer, summary: RunSummary, config: dict
) -> None:
    """Start the W&B run (resumed, with the rows an earlier attempt's run did not get)."""
    from resnet_exp.session import run_tags

    logger, record = trainer.logger, trainer.record
    logger.start(run_dir=job.run_dir, config=config, name=job.name, group=job.group,
                 tags=run_tags(summary.model, cfg.data.name),
                 job_type=job.job_type, run_id=summary.wandb_run_id)  # fmt: skip
    logger.catch_up(record.read_metrics())  # rows an earlier attempt's W&B run did not get
    summary.wandb = logger.info()
    trainer.stop.install()  # again, in case W&B put its own handlers in place
    m = summary.model
    log.info("%s-%d (%s, %s params, %.3f GFLOPs/img) on %s, %s; run dir %s", m["block"],
             m["depth"], m["family"], f"{m['params']:,}", m["flops"] / 1e9, cfg.data.name,
             trainer.device, job.run_dir)  # fmt: skip


# -- what a failure means for the process ---------------------------------------------------------


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def main(cfg: DictConfig) -> float | sweep_failures.NotStarted | None:
    from resnet_exp.hydra_glue.worker_watch import exit_if_orphaned, watch_parent
    from resnet_exp.hydra_glue.writers import job_folder_lock
    from resnet_exp.training.job_plan import stored_result

    job = current_job()
    if job.multirun:  # before torch is imported: skipping a finished job costs well under 1 s
        watch_parent()  # a joblib worker ends with the sweep's process
        not_started = sweep_failures.not_started_reason(job)
        if not_started is not None:  # fail-fast: an earlier job of this sweep failed
            log.warning("%s", not_started)
            return sweep_failures.NotStarted(not_started)
        stored = stored_result(OmegaConf.to_container(cfg, resolve=True), job.run_dir, job.name,
                               job.sweep_dir)  # fmt: skip
        if stored is not None:
            return failures.sweeper_result(stored)
    try:
        with job_folder_lock(job.run_dir, job.multirun):  # one writer per job folder
            return _run(cfg, job)
    finally:
        exit_if_orphaned()  # a worker whose sweep process died ends with its job


def _run(cfg: DictConfig, job: JobFacts) -> float | None:
    from resnet_exp.validation import validate

    stop = StopFlag()
    try:
        with stop:
            validate(cfg, job.run_dir)  # before torch is even imported: a typo costs a second
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
        user_error = failures.user_error(error)
        if user_error is not None:
            failures.exit_with(str(user_error), EXIT_USER_ERROR)
        failures.exit_unexpected(cfg, error)
    if summary.status == DIVERGED:
        failures.diverged(summary, job.run_dir, cfg.optimizer.lr, job.multirun)
    return failures.sweeper_result(summary)


def entry() -> None:
    """Console script and ``python -m resnet_exp``."""
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
    from resnet_exp.hydra_glue.worker_watch import launched_sweep, record_killed_jobs

    name = signal.Signals(stopped.signum).name
    sweep_dir = launched_sweep()
    if sweep_dir is not None:  # the running jobs stop at their next step and record it; jobs
        # whose worker the launcher killed before they could are recorded here
        ctrl_c = stopped.signum == signal.SIGINT
        why = "SIGINT (Ctrl-C to the sweep)" if ctrl_c else f"{name} to the sweep"
        record_killed_jobs(Path(sweep_dir), stopped.status, why)
        message = (
            f"{stopped.status} by {name}: the sweep's running jobs stop at their next step and "
            "record it; run the same command to resume the sweep."
        )
    else:
        message = f"{stopped.status} by {name} during start-up, before training began."
    print(message, file=sys.stderr)
    sys.exit(stopped.exit_code)


def _start(args: list[str]) -> None:
    from resnet_exp.hydra_glue import dry_sweep, preflight, torchrun
    from resnet_exp.hydra_glue.command import parse_command
    from resnet_exp.hydra_glue.launchers import require_launcher_plugins
    from resnet_exp.hydra_glue.run_dir import check_explicit_run_dir
    from resnet_exp.hydra_glue.sweep_dirs import claim_sweep_dir
    from resnet_exp.hydra_glue.worker_watch import mark_parent
    from resnet_exp.hydra_glue.writers import claim_command_folders

    command = parse_command(args)  # the one reading of the command line every check below uses
    require_launcher_plugins(command)
    if command.dry_sweep:
        sys.exit(dry_sweep.dry_sweep(command))
    preflight.preflight(command)  # every job composes and validates before Hydra writes anything
    RunFolderGuard.take(command)
    check_explicit_run_dir(command.new_run_dir)
    named_sweep_dir = command.sweep_dir is not None  # as typed, before the folder is claimed
    command = claim_sweep_dir(command)  # one folder per sweep, the same in every launcher process
    claim_command_folders(command)  # the right kind of folder, and no other writer in it
    mark_parent(command.sweep_dir if command.multirun else None)  # its workers end with it
    sys.argv[1:] = command.args
    try:
        if not torchrun.launched_by_torchrun():
            main()
            sweep_failures.finish(named_sweep_dir)  # failed jobs: their table, exit 1
            return
        sys.argv[1:] = torchrun.start(list(command.args))  # join the group before Hydra starts
        try:
            main()
        finally:
            torchrun.stop()
    finally:  # whatever ended a run before it (re)started: its existing folder is as it was
        RunFolderGuard.restore()


if __name__ == "__main__":
    entry()
