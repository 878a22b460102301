"""A person's names for a job: its record's and W&B's names, its configuration's label. Which job
it *is* is its identity (``tracking/identity.py``), never this text.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

from resnet_exp.tracking.identity import (
    MODEL_KEYS,
    SEED_KEYS,
    configuration,
    naming_overrides,
    override_key,
)

WANDB_JOB_TYPE_MAX = 64


def run_name(overrides: Iterable[str], shared: Iterable[str] = ()) -> str:
    """The job's name in its record: the naming overrides not ``shared`` by every job."""
    common = set(shared)
    return ",".join(o for o in naming_overrides(overrides) if o not in common) or "default"


def config_overrides(overrides: Iterable[str]) -> list[str]:
    """The naming overrides without the seed, in their order: what replicates share."""
    return [o for o in naming_overrides(overrides) if override_key(o) not in SEED_KEYS]


def config_label(overrides: Iterable[str], shared: Iterable[str] = ()) -> str:
    """The configuration as the report's tables call it: its
    :func:`config_overrides` that not every configuration of the sweep has (``shared``, from
    :func:`shared_by_configurations`), or all of them ('default' if none) when none are left."""
    common = set(shared)
    kept = [o for o in config_overrides(overrides) if o not in common]
    return ",".join(kept or config_overrides(overrides)) or "default"


def model_label(residual: bool, depth: int | None) -> str:
    """The model as a person names it (W&B, the report's figures): 'plain-56', 'ResNet-56'."""
    return f"{'ResNet' if residual else 'plain'}-{'?' if depth is None else depth}"


def wandb_names(model: dict, seed: int, overrides: Iterable[str], shared: Iterable[str],
                key: str, sweep: str) -> tuple[str, str, str]:  # fmt: skip
    """How W&B shows a run (SPEC §7): (name, job_type, group) = ('plain-56 (seed 3)', its
    configuration 'plain-56 1a2b3c4d', that configuration within its sweep, where its seeds
    aggregate), named by the model and what else sets the configuration apart in the sweep; the
    configuration's id makes ``model=resnet20`` and ``model/depth=20`` one."""
    common = set(shared)
    extra = [o for o in config_overrides(overrides)
             if o not in common and override_key(o) not in MODEL_KEYS]  # fmt: skip
    label = " ".join([model_label(bool(model["residual"]), int(model["depth"])), *extra])
    job_type = f"{label[: WANDB_JOB_TYPE_MAX - 9]} {configuration(key)}"
    return f"{label} (seed {seed})", job_type, f"{job_type} @ {sweep}"[:128]


def shared_overrides(jobs: Iterable[Iterable[str]]) -> set[str]:
    """The overrides every job names (none for a single job: then nothing is shared)."""
    sets = [set(map(str, job)) for job in jobs]
    return set.intersection(*sets) if len(sets) > 1 else set()


def shared_by_configurations(jobs: Iterable[Iterable[str]]) -> set[str]:
    """The overrides every configuration names (none when the jobs are replicates of one)."""
    return shared_overrides({tuple(config_overrides(job)) for job in jobs})


def sweep_id(sweep_dir: str | os.PathLike[str]) -> str:
    """A W&B-group-safe id of one sweep directory, stable across processes (the group of its jobs'
    and report's W&B runs): `outputs/multirun/2026-11-27/23-40-01` -> `2026-11-27_23-40-01_ab12cd`,
    the hash of the absolute path keeping two sweeps started in the same second apart."""
    path = Path(sweep_dir).expanduser().resolve()
    parts = [p for p in path.parts[-2:] if p not in ("/", "")]
    readable = "_".join(re.sub(r"[^A-Za-z0-9.-]+", "-", p).strip("-") for p in parts) or "sweep"
    digest = hashlib.sha1(str(path).encode("utf-8")).hexdigest()[:6]
    return f"{readable[:100]}_{digest}"
