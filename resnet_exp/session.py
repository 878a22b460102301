"""The steps of one training run, in the order :func:`resnet_exp.app.train` calls them, recording
how it ended in ``summary.json`` and W&B whatever happens. Imports torch: loaded once a run trains.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from resnet_exp.atomic import remove_leftovers
from resnet_exp.hydra_glue import gpu_slots
from resnet_exp.hydra_glue.compose import instantiate_node
from resnet_exp.hydra_glue.job import JobFacts
from resnet_exp.hydra_glue.preflight import RunFolderGuard
from resnet_exp.models.profile import count_flops
from resnet_exp.tracking.names import wandb_names
from resnet_exp.tracking.record import COMPLETED, FAILED, INTERRUPTED, PRUNED, RunSummary, kind
from resnet_exp.tracking.wandb_client import new_run_id
from resnet_exp.tracking.wandb_logger import NullLogger
from resnet_exp.tracking.wandb_secrets import scrub_files
from resnet_exp.training import distributed, resume, threads
from resnet_exp.training.device import resolve_device
from resnet_exp.training.interrupt import Interrupted, StopFlag
from resnet_exp.training.loop import LoopSettings, Trainer
from resnet_exp.training.progress import log_result
from resnet_exp.training.responses import measure_and_write as measure_responses
from resnet_exp.training.speed import choose as choose_speed

log = logging.getLogger("resnet_exp")


@dataclass
class Run:
    """One training run, built and resumed, ready to fit."""

    trainer: Trainer
    summary: RunSummary
    rows: list[dict]  # metrics rows of the epochs already done (a resumed run)
    on_completed: Callable[[], None]  # after a completed fit: the layer responses
    checksum: bool = False  # trainer.debug_checksum: log each DDP rank's weights' hash at the end


def new_summary(cfg: DictConfig, job: JobFacts, key: str) -> RunSummary:
    """What the run is, before anything is built (``summary.json`` grows as the run goes)."""
    return RunSummary(dataset=cfg.data.name, seed=cfg.seed, job=job.name, overrides=job.overrides,
                      epochs_planned=cfg.trainer.epochs, host=socket.gethostname(),
                      pid=os.getpid(), config_key=key)  # fmt: skip


def set_up_process(cfg: DictConfig, job: JobFacts, summary: RunSummary) -> torch.device:
    """This process's torch threads (decided once for the run's life: training/threads.py), its
    device (a joblib GPU slot's, or ``trainer.device``) and its seed."""
    dist = distributed.current()
    slot = gpu_slots.for_job(str(cfg.trainer.device), job.sweep_dir, dist.enabled)
    earlier = distributed.record_for(dist, job.run_dir).read_summary() or RunSummary()
    decision = threads.decide(
        cfg.trainer.num_threads, recorded=(earlier.speed or {}).get("threads"),
        slot_cores=slot.cores if slot else (), parallel_jobs=job.parallel_jobs,
        local_processes=dist.local_world_size, slurm=threads.slurm_cpus(),
    )  # fmt: skip
    summary.warnings += [decision.warning] if decision.warning else []
    summary.speed = {"threads": threads.apply(decision)}
    if slot is not None:
        log.info("joblib sweep on GPUs: this job trains on %s", slot.describe())
    device = resolve_device(slot.device if slot else cfg.trainer.device)
    device = distributed.device_for(dist, device)
    torch.manual_seed(cfg.seed)
    return device


def build_trainer(
    cfg: DictConfig, job: JobFacts, device: torch.device, summary: RunSummary, started: float,
    stop: StopFlag | None,
) -> tuple[Trainer, Callable[[], None]]:  # fmt: skip
    """The model, data, optimizer, schedule and logger in one Trainer; and the measurement of
    layer responses (Fig. 7) that runs after a completed fit."""
    dist, trainer_cfg = distributed.current(), cfg.trainer
    model = instantiate_node(cfg.model, "model")  # first: a bad depth fails before data is read
    data = instantiate_node(cfg.data, "data")
    summary.model = {**model.describe(), "flops": count_flops(model, data.image_shape)}
    data.setup(device=device, seed=cfg.seed, rank=dist.rank, world_size=dist.world_size)
    total_steps = trainer_cfg.epochs * data.steps_per_epoch
    speed = choose_speed(trainer_cfg, device, total_steps)  # `auto` resolved for this device
    summary.speed, summary.data = {**speed.as_dict(), **(summary.speed or {})}, data.describe()
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
                            log_every_steps=trainer_cfg.log_every_steps)  # fmt: skip
    trainer = Trainer(
        model, data, optimizer, scheduler, device, distributed.record_for(dist, job.run_dir),
        logger, settings, forward=torch.compile(trained) if speed.compile else trained,
        parts=model.parts(), dist=dist if dist.enabled else None, wall_start=started,
        meta={"config": summary.config_key}, stop=stop,
    )  # fmt: skip

    def measure_layer_responses() -> None:  # Fig. 7, on rank 0 after a completed run
        if dist.is_main:
            measure_responses(model, data, trainer_cfg.response_images, job.run_dir)

    return trainer, measure_layer_responses


def resume_or_start(cfg: DictConfig, trainer: Trainer, summary: RunSummary) -> list[dict]:
    """Continue from the checkpoint rank 0 picks (every rank the same one), or start afresh;
    the summary says which, and is written. Returns the metrics rows already done."""
    record, device, dist = trainer.record, trainer.device, distributed.current()
    found: dict = {}
    last, setting = record.last_checkpoint, str(cfg.trainer.resume)
    path = distributed.agree_on_resume(dist, lambda: resume.pick(found, setting, last, device))
    start = resume.start_or_resume(trainer, record, path, found.get("state"),
                                   key=summary.config_key, setting=setting)  # fmt: skip
    RunFolderGuard.started()  # from here on the run has (re)started in its folder
    if dist.is_main:  # temp files of a writer killed mid-write (this process holds the folder)
        for leftover in remove_leftovers(record.run_dir) + remove_leftovers(record.checkpoint_dir):
            log.info("removed %s, left by a write that was killed", leftover)
        record.prune_marker.unlink(missing_ok=True)  # an earlier attempt's: this one goes on
    summary.attempts, summary.resumed_from = start.attempts, start.resumed_from
    summary.wall_time_s = trainer.wall_time_s() if start.resumed_from else None
    earlier = start.previous.wandb_run_id or (start.previous.wandb or {}).get("run_id")
    # the W&B run this attempt logs to: the earlier attempt's (its history continues where its
    # checkpoint ends), else one stable per folder and identity; a new one when
    # trainer.resume=never starts the run over
    basis = f"{record.run_dir.resolve()} {summary.config_key}"
    basis += f" {time.time_ns()}" if setting == "never" else ""
    summary.wandb_run_id = str(earlier) if earlier and setting != "never" else new_run_id(basis)
    record.write_summary(summary)
    return start.rows


def start_logger(
    cfg: DictConfig, job: JobFacts, trainer: Trainer, summary: RunSummary, config: dict
) -> None:
    """Start the W&B run (resumed, with the rows an earlier attempt's run did not get), named and
    grouped by its configuration within the sweep, with flat keys to filter and colour by."""
    m, logger, sweep, key = summary.model, trainer.logger, job.group, summary.config_key
    shared = job.shared_by_configs if job.multirun else job.overrides  # a run alone: its model
    name, job_type, group = wandb_names(m, cfg.seed, job.overrides, shared, key, sweep)
    flat = {k: m[k] for k in ("block", "residual", "depth", "family")}
    flat.update(dataset=cfg.data.name, seed=cfg.seed, sweep=sweep)
    tags = [m["block"], f"depth-{m['depth']}", cfg.data.name, kind(m["residual"]), sweep]
    logger.start(run_dir=job.run_dir, config={**config, **flat}, name=name, group=group,
                 tags=tags, job_type=job_type, run_id=summary.wandb_run_id)  # fmt: skip
    sweep_files = job.sweep_dir.glob("*.yaml") if job.sweep_dir else ()  # Hydra's multirun.yaml
    scrub_files([*trainer.record.hydra_dir.glob("*.yaml"), *sweep_files])  # a key typed in
    logger.catch_up(trainer.record.read_metrics())  # rows an earlier attempt's run did not get
    summary.wandb = logger.info()
    trainer.stop.install()  # again, in case W&B put its own handlers in place
    log.info("%s-%d (%s, %s params, %.3f GFLOPs/img) on %s, %s; run dir %s", m["block"],
             m["depth"], m["family"], f"{m['params']:,}", m["flops"] / 1e9, cfg.data.name,
             trainer.device, job.run_dir)  # fmt: skip


def fit_and_record(run: Run) -> RunSummary:
    """Train, and whatever happens record how it ended and finish the logger."""
    trainer, summary = run.trainer, run.summary
    status = FAILED
    try:
        result = trainer.fit(run.rows)
        status = result.status
        if status == PRUNED:  # the sweep's pruner said why in its marker
            summary.stopped_by = trainer.record.prune_marker.read_text(errors="replace").strip()
        if status == COMPLETED:
            run.on_completed()
        summary.final, summary.best = (result.rows[-1] if result.rows else None), result.best
        if run.checksum and trainer.dist is not None:  # each rank says what it holds; all agree
            digest = distributed.weights_checksum(trainer.model)
            log.info("rank %d weights sha256 %s", trainer.dist.rank, digest)
    except Interrupted as stopped:  # Ctrl-C / SIGTERM: a checkpoint at the step boundary
        status, summary.stopped_by = stopped.status, str(stopped)
        raise
    except SystemExit as stopped:  # the launcher ends the process: submitit requeues a SLURM job
        status = INTERRUPTED  # that reached its time limit or was preempted, and exits here
        summary.stopped_by = f"the process was asked to exit ({stopped!r}); it resumes when rerun"
        raise
    except BaseException as error:
        summary.error = f"{type(error).__name__}: {error}"
        raise
    finally:
        _record_end(run, status)
    if trainer.dist is None or trainer.dist.is_main:  # the last lines: after W&B's sync hint
        log_result(summary, trainer.record.run_dir)
    return summary


def _record_end(run: Run, status: str) -> None:
    """``summary.json`` and the W&B run say how the fit ended (written before and after W&B
    finishes, so a hang there still leaves the record)."""
    trainer, summary, record = run.trainer, run.summary, run.trainer.record
    if summary.error is None:  # an error's run keeps what the last completed write said
        summary.epochs, summary.steps = trainer.epoch, trainer.step
    summary.status = status if summary.error is None else FAILED
    summary.wall_time_s = trainer.wall_time_s()  # all attempts of this run together
    record.write_summary(summary)
    out = {"status": summary.status, "params": summary.model["params"]}
    out["flops"] = summary.model["flops"]
    for prefix, row in (("final", summary.final), ("best", summary.best)):
        out.update({f"{prefix}/{key}": value for key, value in (row or {}).items()})
    trainer.logger.set_summary(out)
    trainer.logger.finish(summary.status)
    summary.wandb = trainer.logger.info()
    record.write_summary(summary)
