"""One training session after everything is built: train, then record how it ended (completed,
diverged, failed, interrupted) in ``summary.json`` and W&B, whatever happens. Plain objects only."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from resnet_exp.tracking.record import COMPLETED, FAILED, INTERRUPTED, RunSummary
from resnet_exp.training.interrupt import Interrupted

if TYPE_CHECKING:
    from resnet_exp.training.loop import Trainer

log = logging.getLogger("resnet_exp")


@dataclass
class Run:
    """One training run, built and resumed (:func:`resnet_exp.app.build_run`), ready to fit."""

    trainer: Trainer
    summary: RunSummary
    rows: list[dict]  # metrics rows of the epochs already done (a resumed run)
    on_completed: Callable[[], None]  # after a completed fit: the layer responses
    checksum: bool = False  # trainer.debug_checksum: log each DDP rank's weights' hash at the end
    lease: Any = None  # the core lease (training/core_lease.py) the run holds, released after


def fit_and_record(run: Run) -> RunSummary:
    """Train, and whatever happens record how it ended and finish the logger."""
    trainer, summary = run.trainer, run.summary
    record, logger = trainer.record, trainer.logger
    status = FAILED
    try:
        result = trainer.fit(run.rows)
        status = result.status
        if status == COMPLETED:
            run.on_completed()
        summary.epochs, summary.steps = trainer.epoch, trainer.step
        summary.final, summary.best = (result.rows[-1] if result.rows else None), result.best
        if (
            run.checksum and trainer.dist is not None
        ):  # each rank says what it holds; all must agree
            from resnet_exp.training.distributed import weights_checksum

            digest = weights_checksum(trainer.model)
            log.info("rank %d weights sha256 %s", trainer.dist.rank, digest)
    except Interrupted as stopped:  # Ctrl-C / SIGTERM: a checkpoint at the step boundary
        status, summary.stopped_by = stopped.status, str(stopped)
        summary.epochs, summary.steps = trainer.epoch, trainer.step
        raise
    except SystemExit as stopped:  # the launcher ends the process: submitit requeues a SLURM job
        status = INTERRUPTED  # that reached its time limit or was preempted, and exits here
        summary.stopped_by = f"the process was asked to exit ({stopped!r}); it resumes when rerun"
        summary.epochs, summary.steps = trainer.epoch, trainer.step
        raise
    except BaseException as error:
        summary.error = f"{type(error).__name__}: {error}"
        raise
    finally:
        summary.status = status if summary.error is None else FAILED
        summary.wall_time_s = trainer.wall_time_s()  # all attempts of this run together
        record.write_summary(summary)
        logger.set_summary(wandb_summary(summary))
        logger.finish(summary.status)
        summary.wandb = logger.info()
        record.write_summary(summary)
    return summary


def wandb_summary(summary: RunSummary) -> dict:
    out = {"status": summary.status, "params": summary.model["params"]}
    out["flops"] = summary.model["flops"]
    for prefix, row in (("final", summary.final), ("best", summary.best)):
        for key, value in (row or {}).items():
            out[f"{prefix}/{key}"] = value
    return out


def run_tags(model: dict, dataset: str) -> list[str]:
    """W&B tags: block, depth, dataset and family (plain or residual)."""
    kind = "residual" if model["residual"] else "plain"
    return [model["block"], f"depth-{model['depth']}", dataset, kind]


def wandb_run_id(resume: str, previous: RunSummary) -> str:
    """The W&B run this attempt logs to: the earlier attempt's in this folder (after a kill, a
    requeue or a re-run of the sweep), so the run's history continues where its checkpoint ends;
    a new one when ``trainer.resume=never`` starts the run over."""
    from resnet_exp.tracking.wandb_logger import new_run_id

    earlier = previous.wandb_run_id or (previous.wandb or {}).get("run_id")
    return str(earlier) if earlier and resume != "never" else new_run_id()


def log_every_steps(setting: int | None, epochs: int, data) -> int:
    """trainer.log_every_steps, with null resolved to about 100 per-step rows per run."""
    if setting is not None:
        return int(setting)
    return max(1, epochs * data.steps_per_epoch // 100)
