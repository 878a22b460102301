"""Hydra's basic sweep (same batches, job numbers and ``multirun.yaml``; the default
``hydra/sweeper=resnet_exp`` is :class:`SweeperConf`), except that failed jobs are noted, not
re-raised after the batch, and ``fail_fast`` launches no batch after one
(:mod:`resnet_exp.hydra_glue.sweep_failures`): Hydra still calls ``on_multirun_end`` (the report)
and the entry point ends with a table and exit 1."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from resnet_exp.hydra_glue import sweep_failures as sf
from resnet_exp.hydra_glue.folders import unfinished
from resnet_exp.hydra_glue.internals import job_error, sweep_batches
from resnet_exp.hydra_glue.register import RegisteredTask
from resnet_exp.tracking.record import JOB_LOG, MULTIRUN_YAML

log = logging.getLogger("resnet_exp")


@dataclass
class SweeperConf:
    """The basic sweeper's options plus ``fail_fast``."""

    _target_: str = "hydra_plugins.resnet_exp_launcher._sweeper.ResnetExpSweeper"
    max_batch_size: int | None = None
    params: dict[str, str] | None = None
    fail_fast: bool = False


@dataclass
class OptunaConf:
    """``hydra/sweeper=optuna``'s options (its yaml says what each does), typed, Optuna-free."""

    _target_: str = "hydra_plugins.resnet_exp_launcher._optuna.OptunaSweeper"
    params: dict[str, str] | None = None
    each: list[str] = field(default_factory=list)
    replicates: list[str] = field(default_factory=list)
    baseline: dict[str, Any] | None = None
    n_trials: int = 20
    n_jobs: int | None = None
    direction: str = "minimize"
    objective: str | None = None
    sampler: str = "tpe"
    pruner: Any = None
    seed: int | None = None
    storage: str | None = None
    study_name: str = "resnet_exp"
    fail_fast: bool = False


class ResnetExpSweeper(Sweeper):
    """The basic sweep; failed jobs are collected, not raised; ``fail_fast`` stops launching."""

    def __init__(
        self, max_batch_size: int | None = None, params: Any = None, fail_fast: bool = False
    ) -> None:
        self.max_batch_size, self.params, self.fail_fast = max_batch_size, params or {}, fail_fast

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=RegisteredTask(task_function), config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        assert self.hydra_context is not None and self.launcher is not None
        params = [f"{k}={v}" for k, v in self.params.items()]
        batches = sweep_batches(params + arguments, self.max_batch_size,
                              self.hydra_context.config_loader)  # fmt: skip
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / MULTIRUN_YAML)
        (sweep_dir / sf.STOP_MARKER).unlink(missing_ok=True)  # an earlier launch's stops nothing
        every_job = [job for batch in batches for job in batch]
        outcome = sf.SweepOutcome(str(sweep_dir), jobs=len(every_job), fail_fast=self.fail_fast)
        sf.record_outcome(outcome)
        returns: list[list[JobReturn]] = []
        initial_job_idx = 0
        for batch in batches:
            names = [sf.distinguishing(job, every_job) for job in batch]
            if self.fail_fast and outcome.failed:  # a whole batch after a failure: not launched
                outcome.not_started += names
            else:
                self.validate_batch_is_legal(batch)
                loader = self.hydra_context.config_loader
                kept = unfinished(batch, loader, self.config, every_job)  # finished: not touched
                results = list(self.launcher.launch(kept, initial_job_idx)) if kept else []
                for job, result in zip(kept, results):
                    note_result(outcome, sf.distinguishing(job, every_job), result, sweep_dir)
                returns.append(results)
            initial_job_idx += len(batch)
        return returns


def note_result(outcome: sf.SweepOutcome, name: str, result: JobReturn, sweep_dir: Path) -> None:
    if result.status == JobStatus.FAILED:
        error = job_error(result)
        text = sf.one_line(error) if isinstance(error, BaseException) else str(error)
        outcome.failed.append(sf.FailedJob(name, text, str(_job_log(result, sweep_dir))))
    elif result.status == JobStatus.COMPLETED and isinstance(result.return_value, sf.NotStarted):
        outcome.not_started.append(name)


def job_dir(result: JobReturn) -> str | None:
    """The job's folder, from the Hydra config it ran with (none: a SLURM job that died)."""
    cfg = result.hydra_cfg
    return cfg and OmegaConf.select(cfg, "hydra.runtime.output_dir", default=None) or None


def _job_log(result: JobReturn, sweep_dir: Path) -> Path | str:
    """The failed job's log file (else its working folder, else the sweep's)."""
    folder = job_dir(result)
    return Path(folder) / JOB_LOG if folder else result.working_dir or sweep_dir
