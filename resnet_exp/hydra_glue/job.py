"""This job's facts, read once from Hydra's runtime config and handed on as plain values."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from resnet_exp.tracking.names import (
    run_name,
    shared_by_configurations,
    shared_overrides,
    wandb_job_type,
)


@dataclass
class JobFacts:
    run_dir: Path
    multirun: bool = False
    overrides: list[str] = field(default_factory=list)
    group: str = ""  # the W&B group: one id per sweep (or per single run)
    parallel_jobs: int = 1  # joblib's n_jobs: jobs of this sweep training side by side here
    sweep_dir: Path | None = None  # the sweep's folder (None for a single run)
    shared: list[str] = field(default_factory=list)  # overrides every job of the sweep has
    shared_by_configs: list[str] = field(default_factory=list)  # ... every configuration has

    @property
    def name(self) -> str:
        """The job's name (summary.json's ``job``, the W&B run name): tracking/names.py's rule."""
        return run_name(self.overrides, self.shared)

    @property
    def job_type(self) -> str:
        """The W&B job type: the configuration (replicates share it), labelled as in the report."""
        return wandb_job_type(self.overrides, self.shared_by_configs)


def current_job() -> JobFacts:
    """Run folder, multirun flag, overrides and W&B group of the job Hydra is running now."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from resnet_exp.hydra_glue.command import recorded_sweep_jobs
    from resnet_exp.hydra_glue.resolvers import parallel_jobs
    from resnet_exp.tracking.record import sweep_id

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    # Absolute, so every job of a sweep (and the report run) lands in the same W&B group.
    group_dir = Path(hc.runtime.cwd, hc.sweep.dir if multirun else run_dir).resolve()
    sweep_dir = Path(hc.runtime.cwd, hc.sweep.dir) if multirun else None
    jobs = recorded_sweep_jobs(sweep_dir) if sweep_dir else []  # to name this one among them
    return JobFacts(
        run_dir=run_dir,
        multirun=multirun,
        overrides=list(hc.overrides.task),
        group=sweep_id(group_dir),
        parallel_jobs=parallel_jobs(OmegaConf.select(hc.launcher, "n_jobs")) if multirun else 1,
        sweep_dir=sweep_dir,
        shared=sorted(shared_overrides(jobs)),
        shared_by_configs=sorted(shared_by_configurations(jobs)),
    )
