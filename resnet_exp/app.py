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

import hydra
from omegaconf import DictConfig, OmegaConf

from resnet_exp.config import register_configs
from resnet_exp.config_dir import config_dir
from resnet_exp.errors import EXIT_USER_ERROR, UserError
from resnet_exp.hydra_glue.job import JobFacts, current_job
from resnet_exp.hydra_glue.preflight import RunFolderGuard
from resnet_exp.tracking.record import RunRecord, RunSummary
from resnet_exp.training.interrupt import Interrupted, StopFlag

register_configs()
log = logging.getLogger("resnet_exp")

EXIT_DIVERGED = 3


def train(cfg: DictConfig, job: JobFacts, stop: StopFlag | None = None) -> RunSummary:
    """Train one configuration; its summary is also written to ``summary.json``. ``stop``: the
    SIGINT/SIGTERM flag the training loop looks at between steps."""
    import torch

    from resnet_exp.hydra_glue.instantiate import instantiate_node
    from resnet_exp.models.profile import count_flops
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
                            log_every_steps=_log_every_steps(cfg.trainer.log_every_steps,
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
    path = distributed.agree_on_resume(dist, lambda: _pick(found, cfg.trainer.resume, last, device))
    start = resume.start_or_resume(trainer, record, path, found.get("state"), key=key,
                                   setting=str(cfg.trainer.resume))  # fmt: skip
    RunFolderGuard.started()  # from here on the run has (re)started in its folder
    summary.attempts, summary.resumed_from = start.attempts, start.resumed_from
    summary.wall_time_s = trainer.wall_time_s() if start.resumed_from else None
    summary.wandb_run_id = _wandb_run_id(str(cfg.trainer.resume), start.previous)
    record.write_summary(summary)

    logger.start(run_dir=job.run_dir, config=config, name=job.name, group=job.group,
                 tags=_tags(summary.model, cfg.data.name),
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

    return _fit(trainer, record, logger, summary, start.rows, measure_layer_responses)


def _wandb_run_id(resume: str, previous: RunSummary) -> str:
    """The W&B run this attempt logs to: the earlier attempt's in this folder (after a kill, a
    requeue or a re-run of the sweep), so the run's history continues where its checkpoint ends;
    a new one when ``trainer.resume=never`` starts the run over."""
    from resnet_exp.tracking.wandb_logger import new_run_id

    earlier = previous.wandb_run_id or (previous.wandb or {}).get("run_id")
    return str(earlier) if earlier and resume != "never" else new_run_id()


def _pick(found: dict, setting: str, last, device):
    """Rank 0's choice of checkpoint (kept in ``found`` so it is loaded once)."""
    from resnet_exp.training.resume import choose_checkpoint

    chosen = choose_checkpoint(setting, last, device)
    found["state"] = chosen[1] if chosen else None
    return chosen[0] if chosen else None


def _fit(
    trainer, record: RunRecord, logger, summary: RunSummary, rows: list[dict], on_completed
) -> RunSummary:
    """Train, and whatever happens record how it ended and finish the logger."""
    status = "failed"
    try:
        result = trainer.fit(rows)
        status = result.status
        if status == "completed":
            on_completed()
        summary.epochs, summary.steps = trainer.epoch, trainer.step
        summary.final, summary.best = (result.rows[-1] if result.rows else None), result.best
        if trainer.dist is not None:  # each rank says what it holds; all must agree (test_scale)
            from resnet_exp.training.distributed import weights_checksum

            rank, checksum = trainer.dist.rank, weights_checksum(trainer.model)
            log.info("rank %d weights sha256 %s", rank, checksum)
    except Interrupted as stopped:  # Ctrl-C / SIGTERM: a checkpoint at the step boundary
        status, summary.stopped_by = stopped.status, str(stopped)
        summary.epochs, summary.steps = trainer.epoch, trainer.step
        raise
    except SystemExit as stopped:  # the launcher ends the process: submitit requeues a SLURM job
        status = "interrupted"  # that reached its time limit or was preempted, and exits here
        summary.stopped_by = f"the process was asked to exit ({stopped!r}); it resumes when rerun"
        summary.epochs, summary.steps = trainer.epoch, trainer.step
        raise
    except BaseException as error:
        summary.error = f"{type(error).__name__}: {error}"
        raise
    finally:
        summary.status = status if summary.error is None else "failed"
        summary.wall_time_s = trainer.wall_time_s()  # all attempts of this run together
        record.write_summary(summary)
        logger.set_summary(_wandb_summary(summary))
        logger.finish(summary.status)
        summary.wandb = logger.info()
        record.write_summary(summary)
    return summary


def _tags(model: dict, dataset: str) -> list[str]:
    kind = "residual" if model["residual"] else "plain"
    return [model["block"], f"depth-{model['depth']}", dataset, kind]


def _log_every_steps(setting: int | None, epochs: int, data) -> int:
    """trainer.log_every_steps, with null resolved to about 100 per-step rows per run."""
    if setting is not None:
        return int(setting)
    return max(1, epochs * data.steps_per_epoch // 100)


def _wandb_summary(summary: RunSummary) -> dict:
    out = {"status": summary.status, "params": summary.model["params"]}
    out["flops"] = summary.model["flops"]
    for prefix, row in (("final", summary.final), ("best", summary.best)):
        for key, value in (row or {}).items():
            out[f"{prefix}/{key}"] = value
    return out


# -- what a failure means for the process ---------------------------------------------------------


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def main(cfg: DictConfig) -> float | None:
    from resnet_exp.validation import validate

    job = current_job()
    if job.multirun:  # before torch is imported: skipping a finished job costs well under 1 s
        stored = _finished_earlier(cfg, job)
        if stored is not None:
            return _result(stored)
    stop = StopFlag()
    try:
        with stop:
            validate(cfg, job.run_dir)  # before torch is even imported: a typo costs a second
            from resnet_exp.training import distributed

            job.run_dir = distributed.agree_on_run_dir(distributed.current(), job.run_dir)
            summary = train(cfg, job, stop)
    except Interrupted as stopped:
        _exit_stopped(job, stopped)
    except Exception as error:
        if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 keeps the record
            RunRecord(job.run_dir).mark_failed(f"{type(error).__name__}: {error}", job.name,
                                               job.overrides)  # fmt: skip
        user_error = _user_error(error)
        if job.multirun:
            raise  # a sweep goes on (Hydra reports the job, the report marks it)
        if user_error is not None:
            _exit(str(user_error), EXIT_USER_ERROR)
        _exit_unexpected(cfg, error)
    if summary.status == "diverged":
        message = (
            f"run diverged (non-finite training loss or weights in epoch {summary.epochs}); "
            f"status 'diverged' recorded in {job.run_dir / 'summary.json'}. Lower "
            f"optimizer.lr (now {cfg.optimizer.lr}) or add scheduler.warmup_steps."
        )
        if not job.multirun:
            _exit(message, EXIT_DIVERGED)
        log.error(message)
    return _result(summary)


def _result(summary: RunSummary) -> float:
    """What the task returns to Hydra's sweeper: the best validation (or training) error."""
    if summary.status == "diverged":
        return float("nan")
    best = summary.best or {}
    return best.get("val/err", best.get("train/err"))


def _finished_earlier(cfg: DictConfig, job: JobFacts) -> RunSummary | None:
    """A re-run sweep's cheap check, before any data is read: the stored record of a job that
    completed (or diverged) in its folder under the same configuration, else None (train: start
    or resume). A folder of another configuration is refused and left as it is."""
    from resnet_exp.training.job_plan import SKIP, ForeignJobFolder, plan_job
    from resnet_exp.training.resume import config_key

    key = config_key(OmegaConf.to_container(cfg, resolve=True))
    try:
        plan = plan_job(job.run_dir, key, job.sweep_dir)
    except ForeignJobFolder as error:
        log.error("%s", error)
        raise
    if plan.action != SKIP:
        if plan.reason != "start":
            log.info("job %s: %s", job.name, plan.reason)
        return None
    log.info("job %s %s earlier in %s: skipped, its record is kept", job.name, plan.reason,
             job.run_dir)  # fmt: skip
    return RunSummary.from_json(plan.summary)


def _exit(message: str, code: int) -> None:
    log.error("%s", message)
    print(f"error: {message}", file=sys.stderr)
    RunFolderGuard.restore()  # a run refused before it started leaves an existing folder as it was
    sys.exit(code)


def _exit_unexpected(cfg: DictConfig, error: BaseException) -> None:
    """A known cause (memory, disk) is one paragraph, exit 2; anything else is one line pointing
    at the traceback, which goes to the run's log file only; exit 1."""
    from resnet_exp.failures import known_cause, log_traceback

    message = known_cause(error, cfg)
    if message is not None:
        _exit(message, EXIT_USER_ERROR)
    where = log_traceback(error)
    first = (str(error).strip().splitlines() or [""])[0][:200]
    line = f"error: unexpected {type(error).__name__}: {first}"
    line += f" (traceback in {where})" if where else ""
    log.error(line)
    print(line, file=sys.stderr)
    sys.exit(1)


def _exit_stopped(job: JobFacts, stopped: Interrupted) -> None:
    """Ctrl-C / SIGTERM: the record says so (if the run had begun), one line, exit 128 + signal."""
    record = RunRecord(job.run_dir)
    summary = record.read_summary() or RunSummary()
    if not summary.finished:  # stopped before train() kept the record itself
        summary.status, summary.stopped_by = stopped.status, str(stopped)
        summary.job = summary.job or job.name
        summary.overrides = summary.overrides or list(job.overrides)
        record.write_summary(summary)
    where = (
        f"checkpoint saved to {stopped.checkpoint}"
        if stopped.checkpoint
        else "the last checkpoint on disk is kept as it was"
    )
    message = f"{stopped.status} by {stopped}: {where}; run the same command to resume."
    log.warning(message)
    print(message, file=sys.stderr)
    sys.exit(stopped.exit_code)


def _user_error(error: BaseException) -> UserError | None:
    """The UserError behind ``error`` (Hydra wraps errors raised while instantiating)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, UserError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def entry() -> None:
    """Console script and ``python -m resnet_exp``."""
    from resnet_exp.hydra_glue import dry_sweep, torchrun
    from resnet_exp.hydra_glue.launchers import require_launcher_plugins
    from resnet_exp.hydra_glue.run_dir import check_explicit_run_dir
    from resnet_exp.hydra_glue.sweep_dirs import claim_sweep_dir

    args = sys.argv[1:]
    require_launcher_plugins(args)
    if dry_sweep.wanted(args):
        sys.exit(dry_sweep.dry_sweep(args))
    from resnet_exp.hydra_glue.preflight import preflight

    preflight(args)  # every job composes and validates before Hydra creates or writes anything
    RunFolderGuard.take(args)
    check_explicit_run_dir(args)
    args = claim_sweep_dir(args)  # one folder per sweep, the same in every launcher process
    sys.argv[1:] = args
    if not torchrun.launched_by_torchrun():
        main()
        return
    sys.argv[1:] = torchrun.start(args)  # join the process group before Hydra starts
    try:
        main()
    finally:
        torchrun.stop()


if __name__ == "__main__":
    entry()
