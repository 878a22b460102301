"""``--multirun ... --cfg job``: print the config each job of a sweep would run with.

Hydra itself refuses to combine ``--multirun`` with ``--cfg``; checking a sweep before launching it
is exactly when a user wants both, so we expand the sweep and compose every job, and say per job
whether running it would skip (completed), resume or start it in its folder.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from resnet_exp.errors import EXIT_USER_ERROR
from resnet_exp.hydra_glue import gpu_slots

if TYPE_CHECKING:
    from resnet_exp.hydra_glue.command import Command

CHOICES = ("job", "hydra", "all")


def dry_sweep(command: Command) -> int:
    """Print every job's config; returns the process exit code."""
    from resnet_exp.hydra_glue import preflight
    from resnet_exp.hydra_glue.compose import compose

    what = command.cfg or "job"
    if what not in CHOICES:
        print(
            f"error: --cfg {what!r} is not a choice; valid: {', '.join(CHOICES)}.", file=sys.stderr
        )
        return EXIT_USER_ERROR
    preflight.preflight(command, dry=True)  # each job parses, composes and validates, or exit 2
    slots = gpu_slots.planned_for(command.hydra)  # joblib over the node's GPUs: each job's device
    for number, job in enumerate(command.jobs()):
        full, task = compose(job, return_hydra_config=True), compose(job)
        print(f"# job {number}: {' '.join(job) or '(no overrides)'}")
        print(f"# {_would(full, task, command.sweep_dir)}")
        if slots and str(task.trainer.device) in ("auto", "cuda"):
            print(f"# {gpu_slots.predicted(number, slots)}")
        cfg = full.hydra if what == "hydra" else full if what == "all" else task
        print(OmegaConf.to_yaml(cfg, resolve=command.resolve))
    return 0


def _would(full: DictConfig, task: DictConfig, sweep_dir: str | None) -> str:
    """What running this job would do with its folder: start, resume or skip (job_plan.py)."""
    from resnet_exp.tracking.identity import identity_key
    from resnet_exp.training.job_plan import ForeignJobFolder, plan_job

    if sweep_dir is None:
        return (
            "would be started (each run of this command makes a new sweep folder; name one "
            "with hydra.sweep.dir=outputs/multirun/<name> to resume it later)"
        )
    job_dir = Path(sweep_dir) / str(full.hydra.sweep.subdir)
    try:
        key = identity_key(OmegaConf.to_container(task, resolve=True))
        plan = plan_job(job_dir, key, Path(sweep_dir))
    except ForeignJobFolder as error:
        return f"would be refused: {error}"
    verb = {"skip": "skipped", "resume": "resumed", "start": "started"}[plan.action]
    why = "" if plan.reason == "start" else f" ({plan.reason})"
    return f"{job_dir}: would be {verb}{why}"
