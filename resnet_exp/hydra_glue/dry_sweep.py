"""``--multirun ... --cfg job``: print the config each job of a sweep would run with.

Hydra itself refuses to combine ``--multirun`` with ``--cfg``; checking a sweep before launching it
is exactly when a user wants both, so we expand the sweep and compose every job, and say per job
whether running it would skip (completed), resume or start it in its folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from resnet_exp.errors import EXIT_USER_ERROR
from resnet_exp.hydra_glue import gpu_slots
from resnet_exp.hydra_glue.sweep_dirs import explicit_sweep_dir

CHOICES = ("job", "hydra", "all")


def wanted(args: list[str]) -> bool:
    """Whether ``args`` ask for a dry sweep: ``--cfg`` with ``--multirun`` or with a preset (a
    preset may make itself a sweep with ``hydra.mode: MULTIRUN``)."""
    wants_cfg = any(a in ("--cfg", "-c") for a in args)
    multirun = any(a in ("--multirun", "-m") for a in args)
    return wants_cfg and (multirun or any(a.startswith("experiment=") for a in args))


def dry_sweep(args: list[str]) -> int:
    """Print every job's config; returns the process exit code."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from resnet_exp.hydra_glue.compose import compose
    from resnet_exp.hydra_glue.internals import split_sweep

    what, resolve, overrides = _parse(args)
    if what not in CHOICES:
        print(
            f"error: --cfg {what!r} is not a choice; valid: {', '.join(CHOICES)}.", file=sys.stderr
        )
        return EXIT_USER_ERROR
    from resnet_exp.hydra_glue.preflight import preflight

    preflight(["--multirun", *overrides])  # each job parses, composes and validates, or exit 2
    # Sweep parameters a preset sets in hydra.sweeper.params, as Hydra's basic sweeper merges them:
    # the command line wins for a key it also names.
    parser = OverridesParser.create()
    fixed = [o.input_line for o in parser.parse_overrides(overrides) if not o.is_sweep_override()]
    base = compose(fixed, return_hydra_config=True)
    named = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    params = base.hydra.sweeper.get("params") or {}
    overrides = [f"{k}={v}" for k, v in params.items() if k not in named] + overrides
    sweep_dir = explicit_sweep_dir(overrides)
    slots = gpu_slots.planned_for(base.hydra)  # joblib over the node's GPUs: each job's device
    for number, job in enumerate(split_sweep(overrides)):
        full, task = compose(job, return_hydra_config=True), compose(job)
        print(f"# job {number}: {' '.join(job) or '(no overrides)'}")
        print(f"# {_would(full, task, sweep_dir)}")
        if slots and str(task.trainer.device) in ("auto", "cuda"):
            print(f"# {gpu_slots.predicted(number, slots)}")
        cfg = full.hydra if what == "hydra" else full if what == "all" else task
        print(OmegaConf.to_yaml(cfg, resolve=resolve))
    return 0


def _would(full: DictConfig, task: DictConfig, sweep_dir: str | None) -> str:
    """What running this job would do with its folder: start, resume or skip (job_plan.py)."""
    from resnet_exp.training.job_plan import ForeignJobFolder, plan_job
    from resnet_exp.training.resume import config_key

    if sweep_dir is None:
        return (
            "would be started (each run of this command makes a new sweep folder; name one "
            "with hydra.sweep.dir=outputs/multirun/<name> to resume it later)"
        )
    job_dir = Path(sweep_dir) / str(full.hydra.sweep.subdir)
    try:
        key = config_key(OmegaConf.to_container(task, resolve=True))
        plan = plan_job(job_dir, key, Path(sweep_dir))
    except ForeignJobFolder as error:
        return f"would be refused: {error}"
    verb = {"skip": "skipped", "resume": "resumed", "start": "started"}[plan.action]
    why = "" if plan.reason == "start" else f" ({plan.reason})"
    return f"{job_dir}: would be {verb}{why}"


def _parse(args: list[str]) -> tuple[str, bool, list[str]]:
    """(--cfg's value, --resolve given, the overrides)."""
    what, resolve, overrides, i = "job", False, [], 0
    while i < len(args):
        arg = args[i]
        if arg in ("--cfg", "-c"):
            what, i = args[i + 1], i + 2
            continue
        if arg == "--resolve":
            resolve = True
        elif arg not in ("--multirun", "-m"):
            overrides.append(arg)
        i += 1
    return what, resolve, overrides
