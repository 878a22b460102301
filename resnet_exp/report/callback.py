"""Hydra callback that keeps a sweep's report current while the sweep runs.

Registered in conf/config.yaml as ``hydra.callbacks.report: {_target_: resnet_exp.report.callback.
ReportCallback}``. Hydra skips ``on_multirun_end`` when any job raised, so the report is rebuilt
after *every* job (``on_job_end``); the sweep's last job therefore always leaves a complete report
behind, failed jobs included. ``on_multirun_end`` rebuilds once more and logs the report to W&B.
Nothing here may fail a job or the sweep: every error becomes a logged warning.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("resnet_exp.report")


def is_multirun(config: DictConfig) -> bool:
    """Whether `config` belongs to a --multirun sweep (`hydra.mode` is RunMode.MULTIRUN)."""
    mode = OmegaConf.select(config, "hydra.mode", default=None)
    return str(getattr(mode, "name", mode)).upper().endswith("MULTIRUN")


def _absolute(path: str, config: DictConfig) -> Path:
    """A Hydra path made absolute against the launch directory (the job may have chdir'ed)."""
    resolved = Path(path).expanduser()
    if resolved.is_absolute():
        return resolved
    launch_dir = OmegaConf.select(config, "hydra.runtime.cwd", default=None) or os.getcwd()
    return Path(launch_dir) / resolved


def sweep_dir_of(config: DictConfig) -> Path:
    """The sweep directory (`hydra.sweep.dir`) as an absolute path."""
    return _absolute(
        str(OmegaConf.select(config, "hydra.sweep.dir", throw_on_missing=True)), config
    )


def _logger_node(config: DictConfig) -> dict[str, Any] | None:
    node = OmegaConf.select(config, "logger", default=None)
    if node is None or not OmegaConf.is_dict(node):
        return None
    container = OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
    return container if isinstance(container, dict) else None


class ReportCallback(Callback):
    """Rebuild the sweep report after each job and at the end of the sweep (then also log it to
    W&B).

    Args:
        wandb: set False to never log the report to W&B (the files are still written).
    """

    def __init__(self, wandb: bool = True) -> None:
        self.wandb = wandb

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """In a multirun: note why a job failed (if it left no summary.json), then rebuild the
        report."""
        try:
            if not is_multirun(config):
                return
            self._record_failure(config, job_return)
            from resnet_exp.report.build import build_report

            result = build_report(sweep_dir_of(config))
            log.info("sweep report updated: %s", result.paths["report_md"])
        except Exception as exc:  # a report problem must never fail the job
            log.warning("Could not update the sweep report (%s: %s).", type(exc).__name__, exc)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Final rebuild, then one W&B run named "report" in the sweep's group (unless W&B is
        off)."""
        try:
            from resnet_exp.report.build import build_report, log_report_to_wandb, logger_settings

            sweep_dir = sweep_dir_of(config)
            result = build_report(sweep_dir)
            log.info("sweep report: %s", result.paths["report_md"])
            settings = logger_settings(_logger_node(config)) if self.wandb else None
            if settings is None:
                return
            log_report_to_wandb(
                sweep_dir,
                result.runs,
                project=settings["project"],
                group=settings["group"],
                mode=settings["mode"],
                entity=settings["entity"],
                dir=_absolute(settings["dir"], config) if settings["dir"] else None,
                init_timeout=float(settings["init_timeout"]),
            )
        except Exception as exc:
            log.warning("Could not build the final sweep report (%s: %s).", type(exc).__name__, exc)

    @staticmethod
    def _record_failure(config: DictConfig, job_return: JobReturn) -> None:
        """Keep a failed job's exception message for the report when the job wrote no
        summary.json."""
        if getattr(job_return, "status", None) != JobStatus.FAILED:
            return
        output_dir = OmegaConf.select(config, "hydra.runtime.output_dir", default=None)
        if not output_dir:
            return
        from resnet_exp.atomic import atomic_write
        from resnet_exp.report.aggregate import JOB_ERROR, SUMMARY

        job_dir = _absolute(str(output_dir), config)
        if (job_dir / SUMMARY).exists() or not job_dir.is_dir():
            return
        exc = getattr(job_return, "_return_value", None)
        from resnet_exp.errors import UserError

        if isinstance(getattr(exc, "__cause__", None), UserError):  # unwrap instantiate's wrapper
            exc = exc.__cause__
        record = {"type": type(exc).__name__ if exc is not None else None, "message": str(exc)}
        atomic_write(job_dir / JOB_ERROR, (json.dumps(record, indent=2) + "\n").encode("utf-8"))
