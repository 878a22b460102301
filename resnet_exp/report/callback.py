"""Hydra callback (``hydra.callbacks.report`` in conf/config.yaml) that keeps a sweep's report
current: Hydra skips ``on_multirun_end`` when a job raised, so the report is rebuilt after *every*
job, and once more (logged to W&B) at the end. Nothing here may fail a job or the sweep.
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from resnet_exp.errors import UserError
from resnet_exp.hydra_glue.internals import job_error
from resnet_exp.tracking.record import RunFiles, write_job_error

if TYPE_CHECKING:
    from resnet_exp.report.build import ReportResult

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
    path = OmegaConf.select(config, "hydra.sweep.dir", throw_on_missing=True)
    return _absolute(str(path), config)


def _report(module: str = "build") -> Any:
    """A report module, imported once a report is built: it loads matplotlib, which a job that
    only instantiates this callback does not need."""
    return importlib.import_module(f"resnet_exp.report.{module}")


def refresh_report(config: DictConfig, what: str = "") -> ReportResult | None:
    """Rebuild the report of ``config``'s sweep (the one entry the Hydra side calls: this
    callback and the SLURM launcher), logging ``what`` and its path; a problem is a logged
    warning, never an error."""
    try:
        result = _report().build_report(sweep_dir_of(config))
    except Exception as exc:  # a report problem must never fail a job or the sweep
        log.warning("Could not update the sweep report (%s: %s).", type(exc).__name__, exc)
        return None
    if what:
        log.info("%s: %s", what, result.paths["report_md"])
    return result


def _logger_node(config: DictConfig) -> dict[str, Any] | None:
    node = OmegaConf.select(config, "logger", default=None)
    if node is None or not OmegaConf.is_dict(node):
        return None
    container = OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
    return container if isinstance(container, dict) else None


class ReportCallback(Callback):
    """Rebuild the sweep report after each job and at the end of the sweep (then also log it to
    W&B, unless ``wandb`` is False: the files are written either way)."""

    def __init__(self, wandb: bool = True) -> None:
        self.wandb = wandb

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """In a multirun: note why a job failed (if it left no summary.json), then rebuild."""
        try:
            if not is_multirun(config):
                return
            self._record_failure(config, job_return)
        except Exception as exc:  # a report problem must never fail the job
            log.warning("Could not update the sweep report (%s: %s).", type(exc).__name__, exc)
            return
        refresh_report(config, "sweep report updated")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Final rebuild, the W&B report run in the sweep's group (unless W&B is off), then the
        sweep's last lines: its verdict, its table and the report's path."""
        result = refresh_report(config)
        if result is None:
            return
        try:
            build = _report()
            settings = build.logger_settings(_logger_node(config)) if self.wandb else None
            if settings is not None:
                settings["dir"] = _absolute(settings["dir"], config) if settings["dir"] else None
                build.log_report_to_wandb(sweep_dir_of(config), result.runs, **settings)
            lines = _report("console").end_lines(result.runs, result.paths["report_md"])
            print("\n".join(lines), flush=True)
        except Exception as exc:
            log.warning("Could not build the final sweep report (%s: %s).", type(exc).__name__, exc)

    @staticmethod
    def _record_failure(config: DictConfig, job_return: JobReturn) -> None:
        """A failed job's exception for the report, when the job wrote no summary.json."""
        if getattr(job_return, "status", None) != JobStatus.FAILED:
            return
        output_dir = OmegaConf.select(config, "hydra.runtime.output_dir", default=None)
        if not output_dir:
            return
        job_dir = _absolute(str(output_dir), config)
        if RunFiles(job_dir).summary_path.exists() or not job_dir.is_dir():
            return
        exc = job_error(job_return)
        if isinstance(getattr(exc, "__cause__", None), UserError):  # unwrap instantiate's wrapper
            exc = exc.__cause__
        write_job_error(job_dir, type(exc).__name__ if exc is not None else None, str(exc))
