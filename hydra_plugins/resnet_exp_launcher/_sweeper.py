"""Hydra's basic sweeper, minus the traceback at the end, plus ``fail_fast``.

``conf/hydra/sweeper/resnet_exp.yaml`` (the default in conf/config.yaml) points ``_target_`` here.
It expands and launches the sweep exactly as :class:`BasicSweeper` does (same batches, same job
numbers, same ``multirun.yaml``), but where the basic sweeper re-raises the first failed job's
exception after the batch, this one notes every failed job and every job fail-fast kept from
starting (:mod:`resnet_exp.hydra_glue.sweep_failures`) and goes on, so that Hydra still calls
``on_multirun_end`` (the final report) and the entry point ends with a table and exit 1.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from resnet_exp.tracking.record import MULTIRUN_YAML

log = logging.getLogger("resnet_exp")


class ResnetExpSweeper(BasicSweeper):
    """The basic sweeper; failed jobs are collected, not raised; ``fail_fast`` stops launching."""

    def __init__(
        self,
        max_batch_size: int | None = None,
        params: dict[str, str] | None = None,
        fail_fast: bool = False,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.fail_fast = fail_fast

    def sweep(self, arguments: list[str]) -> Any:
        from resnet_exp.hydra_glue import sweep_failures as sf
        from resnet_exp.hydra_glue.sweep_dirs import unfinished

        assert self.config is not None and self.launcher is not None
        assert self.hydra_context is not None
        params_conf = self._parse_config()
        params_conf.extend(arguments)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        self.overrides = self.split_arguments(
            parser.parse_overrides(params_conf), self.max_batch_size
        )
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / MULTIRUN_YAML)
        sf.clear_marker(sweep_dir)
        every_job = [list(job) for batch in self.overrides for job in batch]
        outcome = sf.SweepOutcome(str(sweep_dir), jobs=len(every_job), fail_fast=self.fail_fast)
        sf.record_outcome(outcome)

        returns: list[list[JobReturn]] = []
        initial_job_idx = 0
        while not self.is_done():
            batch = self.get_job_batch()
            if self.fail_fast and outcome.failed:  # a whole batch after a failure: not launched
                outcome.not_started += [sf.distinguishing(list(j), every_job) for j in batch]
                initial_job_idx += len(batch)
                continue
            tic = time.perf_counter()
            self.validate_batch_is_legal(batch)
            log.debug("validated %d jobs in %.2f s", len(batch), time.perf_counter() - tic)
            loader, size = self.hydra_context.config_loader, len(batch)
            batch = unfinished(batch, loader, self.config, every_job)  # finished: not touched
            results = list(self.launcher.launch(batch, initial_job_idx)) if batch else []
            for job, result in zip(batch, results):
                self._note(outcome, sf.distinguishing(list(job), every_job), result, sweep_dir)
            initial_job_idx += size
            returns.append(results)
        return returns

    @staticmethod
    def _note(outcome: Any, name: str, result: JobReturn, sweep_dir: Path) -> None:
        from resnet_exp.hydra_glue import sweep_failures as sf

        if result.status == JobStatus.FAILED:
            error = getattr(result, "_return_value", None)
            text = sf.one_line(error) if isinstance(error, BaseException) else str(error)
            outcome.failed.append(sf.FailedJob(name, text, str(_job_log(result, sweep_dir))))
        elif isinstance(getattr(result, "_return_value", None), sf.NotStarted):
            outcome.not_started.append(name)


def _job_log(result: JobReturn, sweep_dir: Path) -> Path | str:
    """The failed job's log file, from the Hydra config it ran with (else its folder)."""
    from resnet_exp.tracking.record import JOB_LOG

    output_dir = None
    if result.hydra_cfg is not None:  # None for a SLURM job that died without a result
        output_dir = OmegaConf.select(result.hydra_cfg, "hydra.runtime.output_dir", default=None)
    if output_dir:
        return Path(output_dir) / JOB_LOG
    return result.working_dir or sweep_dir
