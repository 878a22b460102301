"""The entry point: compose -> instantiate -> train -> record.

:func:`train` turns the composed config into a model, data, optimizer, scheduler and logger and
trains them; :func:`main` (Hydra's task function) decides what a failure means for the process (a
single run: an exit code; a multirun job: raise, so the sweep goes on and its report marks the job).
Everything Hydra-specific besides ``@hydra.main`` lives in :mod:`resnet_exp.hydra_glue`.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from resnet_exp import failures
from resnet_exp.config import register_configs
from resnet_exp.config_dir import config_dir
from resnet_exp.errors import EXIT_USER_ERROR
from resnet_exp.hydra_glue.job import JobFacts, current_job
from resnet_exp.hydra_glue.preflight import RunFolderGuard
from resnet_exp.tracking.record import RunRecord, RunSummary
from resnet_exp.training.interrupt import Interrupted, StopFlag

register_configs()
log = logging.getLogger("resnet_exp")


def train(cfg: DictConfig, job: JobFacts, stop: StopFlag | None = None) -> RunSummary:
    """Train one configuration; its summary is also written to ``summary.json``. ``stop``: the
    SIGINT/SIGTERM flag the training loop looks at between steps."""
    import torch

    from resnet_exp.atomic import remove_leftovers
    from resnet_exp.hydra_glue.instantiate import instantiate_node
    from resnet_exp.models.profile import count_flops
    from resnet_exp.session import fit_and_record, log_every_steps, run_tags, wandb_run_id
    from resnet_exp.summary import input_shape
    from resnet_exp.tracking.replicates import wandb_job_type
    from resnet_exp.tracking.wandb_logger import NullLogger
    from resnet_exp.training import distributed, resume
    from resnet_exp.training.device import resolve_device
    from resnet_exp.training.loop import LoopSettings, Trainer
    from resnet_exp.training.responses import measure_and_write as measure_responses
    from resnet_exp.training.speed import choose as choose_speed

    started, dist = time.time(), distributed.current()
    config = OmegaConf.to_container(cfg, resolve=True)
    record = distributed.record_for(dist, job.run_dir)
    summary = RunSummary(dataset=cfg.data.name, seed=cfg.seed, job=job.name,
                         overrides=job.overrides, epochs_planned=cfg.trainer.epochs,
                         host=socket.gethostname(), pid=os.getpid())  # fmt: skip
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
    if threads:
        torch.set_num_threads(threads)
        log.info("torch intra-op threads: %d", threads)
    device = distributed.device_for(dist, resolve_device(cfg.trainer.device))
    torch.manual_seed(cfg.seed)

    model = instantiate_node(cfg.model, "model")  # first: a bad depth fails before data is read
    summary.model = {**model.describe(), "flops": count_flops(model, input_shape(cfg))}
    data = instantiate_node(cfg.data, "data")
    data.setup(device=device, seed=cfg.seed, rank=dist.rank, world_size=dist.world_size)
    total_steps = cfg.trainer.epochs * data.steps_per_epoch
    speed = choose_speed(cfg.trainer, device, total_steps)  # `auto` resolved for this device
    summary.speed, summary.data = speed.as_dict(), data.describe()
    model = model.to(device)
    if speed.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model, trained = distributed.wrap_model(model, dist, device, cfg.trainer.sync_bn)
    optimizer = instantiate_node(cfg.optimizer, "optimizer")(model.parameters())
    scheduler = instantiate_node(cfg.scheduler, "scheduler")(optimizer, total_steps=total_steps)
    logger = instantiate_node(cfg.logger, "logger") if dist.is_main else NullLogger()
    settings = LoopSettings(epochs=cfg.trainer.epochs, precision_dtype=speed.dtype,
                            channels_last=speed.channels_last, progress=cfg.trainer.progress,
                            checkpoint_every_steps=cfg.trainer.checkpoint_every_steps,
                            log_every_steps=log_every_steps(cfg.trainer.log_every_steps,
                                                             cfg.trainer.epochs, data))  # fmt: skip
    key = summary.config_key = resume.config_key(config)
    trainer = Trainer(
        model, data, optimizer, scheduler, device, record, logger, settings,
        forward=torch.compile(trained) if speed.compile else trained, parts=model.parts(),
        dist=dist if dist.enabled else None, wall_start=started, meta={"config": key},
    )  # fmt: skip
    trainer.stop = stop or trainer.stop

    found: dict = {}  # rank 0 picks the checkpoint; every rank resumes from the same one
    last = record.checkpoint_dir / "last.pt"
    path = distributed.agree_on_resume(
        dist, lambda: resume.pick(found, cfg.trainer.resume, last, device)
    )
    start = resume.start_or_resume(trainer, record, path, found.get("state"), key=key,
                                   setting=str(cfg.trainer.resume))  # fmt: skip
    RunFolderGuard.started()  # from here on the run has (re)started in its folder
    if dist.is_main:  # temp files of a writer killed mid-write (this process holds the folder)
        for leftover in remove_leftovers(job.run_dir) + remove_leftovers(record.checkpoint_dir):
            log.info("removed %s, left by a write that was killed", leftover)
    summary.attempts, summary.resumed_from = start.attempts, start.resumed_from
    summary.wall_time_s = trainer.wall_time_s() if start.resumed_from else None
    summary.wandb_run_id = wandb_run_id(str(cfg.trainer.resume), start.previous)
    record.write_summary(summary)

    logger.start(run_dir=job.run_dir, config=config, name=job.name, group=job.group,
                 tags=run_tags(summary.model, cfg.data.name),
                 job_type=wandb_job_type(job.overrides), run_id=summary.wandb_run_id)  # fmt: skip
    logger.catch_up(record.read_metrics())  # rows an earlier attempt's W&B run did not get
    summary.wandb = logger.info()
    trainer.stop.install()  # again, in case W&B put its own handlers in place
    m = summary.model
    log.info("%s-%d (%s, %s params, %.3f GFLOPs/img) on %s, %s; run dir %s", m["block"],
             m["depth"], m["family"], f"{m['params']:,}", m["flops"] / 1e9, cfg.data.name,
             device, job.run_dir)  # fmt: skip

    def measure_layer_responses() -> None:  # Fig. 7, on rank 0 after a completed run
        if dist.is_main:
            measure_responses(model, data, cfg.trainer.response_images, job.run_dir)

    return fit_and_record(trainer, record, logger, summary, start.rows, measure_layer_responses)


# -- what a failure means for the process ---------------------------------------------------------


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def main(cfg: DictConfig) -> float | None:
    from resnet_exp.hydra_glue.worker_watch import exit_if_orphaned, watch_parent
    from resnet_exp.hydra_glue.writers import job_folder_lock
    from resnet_exp.training.job_plan import stored_result

    job = current_job()
    if job.multirun:  # before torch is imported: skipping a finished job costs well under 1 s
        watch_parent()  # a joblib worker ends with the sweep's process
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
        if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 keeps the record
            RunRecord(job.run_dir).mark_failed(f"{type(error).__name__}: {error}", job.name,
                                               job.overrides)  # fmt: skip
        if job.multirun:
            raise  # a sweep goes on (Hydra reports the job, the report marks it)
        user_error = failures.user_error(error)
        if user_error is not None:
            failures.exit_with(str(user_error), EXIT_USER_ERROR)
        failures.exit_unexpected(cfg, error)
    if summary.status == "diverged":
        failures.diverged(summary, job.run_dir, cfg.optimizer.lr, job.multirun)
    return failures.sweeper_result(summary)


def entry() -> None:
    """Console script and ``python -m resnet_exp``."""
    try:
        _start(sys.argv[1:])
    except KeyboardInterrupt:  # Ctrl-C before the run's own handler is in place (start-up)
        from resnet_exp.hydra_glue.worker_watch import launched_sweep, record_killed_jobs

        if launched_sweep():  # a sweep's process waiting on its workers, which stop themselves
            from resnet_exp.hydra_glue.sweep_dirs import explicit_sweep_dir

            sweep_dir = explicit_sweep_dir(sys.argv[1:])
            if sweep_dir is not None:  # jobs whose worker the launcher killed before they could
                record_killed_jobs(Path(sweep_dir), "interrupted", "SIGINT (Ctrl-C to the sweep)")
            message = (
                "interrupted by SIGINT: the sweep's running jobs stop at their next step and "
                "record it; run the same command to resume the sweep."
            )
            print(message, file=sys.stderr)
        else:
            print("interrupted by SIGINT during start-up, before training began.", file=sys.stderr)
        sys.exit(130)


def _start(args: list[str]) -> None:
    from resnet_exp.hydra_glue import dry_sweep, torchrun
    from resnet_exp.hydra_glue.launchers import require_launcher_plugins
    from resnet_exp.hydra_glue.run_dir import check_explicit_run_dir
    from resnet_exp.hydra_glue.sweep_dirs import claim_sweep_dir
    from resnet_exp.hydra_glue.worker_watch import mark_parent
    from resnet_exp.hydra_glue.writers import claim_command_folders

    require_launcher_plugins(args)
    if dry_sweep.wanted(args):
        sys.exit(dry_sweep.dry_sweep(args))
    from resnet_exp.hydra_glue.preflight import preflight

    preflight(args)  # every job composes and validates before Hydra creates or writes anything
    RunFolderGuard.take(args)
    check_explicit_run_dir(args)
    args = claim_sweep_dir(args)  # one folder per sweep, the same in every launcher process
    claim_command_folders(args)  # the right kind of folder, and no other writer in it
    mark_parent(args)  # the sweep's workers end with this process
    sys.argv[1:] = args
    try:
        if not torchrun.launched_by_torchrun():
            main()
            return
        sys.argv[1:] = torchrun.start(args)  # join the process group before Hydra starts
        try:
            main()
        finally:
            torchrun.stop()
    finally:  # whatever ended a run before it (re)started: its existing folder is as it was
        RunFolderGuard.restore()


if __name__ == "__main__":
    entry()
