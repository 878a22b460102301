"""This job's facts, read once from Hydra's runtime config and handed on as plain values; and the
command line Hydra gets on each rank under ``torchrun`` (every rank reads rank 0's clock for
``${now:...}``, so all agree on one run folder)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from resnet_exp.hydra_glue.command import recorded_sweep_jobs
from resnet_exp.hydra_glue.folders import rank_overrides
from resnet_exp.hydra_glue.internals import pin_now
from resnet_exp.hydra_glue.launchers import launcher_traits
from resnet_exp.tracking.names import run_name, shared_by_configurations, shared_overrides, sweep_id


@dataclass
class JobFacts:
    run_dir: Path
    multirun: bool = False
    overrides: list[str] = field(default_factory=list)
    group: str = ""  # the sweep's id (a single run's own): W&B's tag and `sweep` key
    parallel_jobs: int = 1  # the launcher's jobs of this sweep training side by side here
    sweep_dir: Path | None = None  # the sweep's folder (None for a single run)
    shared: list[str] = field(default_factory=list)  # overrides every job of the sweep has
    shared_by_configs: list[str] = field(default_factory=list)  # ... every configuration has

    @property
    def name(self) -> str:
        """The job's name (summary.json's ``job``): tracking/names.py's rule."""
        return run_name(self.overrides, self.shared)


def current_job() -> JobFacts:
    """Run folder, multirun flag, overrides and W&B group of the job Hydra is running now."""
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
        parallel_jobs=launcher_traits(hc.launcher).parallel_jobs if multirun else 1,
        sweep_dir=sweep_dir,
        shared=sorted(shared_overrides(jobs)),
        shared_by_configs=sorted(shared_by_configurations(jobs)),
    )


# -- torchrun --------------------------------------------------------------------------------------


def start_torchrun(argv: list[str]) -> list[str]:
    """Join torchrun's process group; returns the overrides to hand to Hydra on this rank."""
    from resnet_exp.training import distributed  # torch: only a torchrun start needs it

    dist, stamp = distributed.init_from_env()
    if not dist.enabled:
        return list(argv)
    pin_now(stamp)
    return rank_overrides(list(argv), dist.rank)
