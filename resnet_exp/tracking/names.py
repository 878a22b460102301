"""A person's names for a job, from its overrides: its W&B run name and its configuration's label.

Which job it *is* (its folder, skip/resume, the report's grouping) is its identity
(``tracking/identity.py``), never this text; these names leave out the machine-only keys of that
module and the overrides every job of the sweep shares. Plain strings in, plain strings out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from resnet_exp.tracking.identity import SEED_KEYS, naming_overrides, override_key

WANDB_JOB_TYPE_MAX = 64


def run_name(overrides: Iterable[str], shared: Iterable[str] = ()) -> str:
    """The W&B run name: the naming overrides not ``shared`` by every job of the sweep."""
    common = set(shared)
    return ",".join(o for o in naming_overrides(overrides) if o not in common) or "default"


def config_overrides(overrides: Iterable[str]) -> list[str]:
    """The naming overrides without the seed, in their order: what replicates share."""
    return [o for o in naming_overrides(overrides) if override_key(o) not in SEED_KEYS]


def config_label(overrides: Iterable[str], shared: Iterable[str] = ()) -> str:
    """The configuration as the report's tables and W&B's ``job_type`` call it: its
    :func:`config_overrides` that not every configuration of the sweep has (``shared``, from
    :func:`shared_by_configurations`), or all of them ('default' if none) when none are left."""
    common = set(shared)
    kept = [o for o in config_overrides(overrides) if o not in common]
    return ",".join(kept or config_overrides(overrides)) or "default"


def wandb_job_type(overrides: Iterable[str], shared: Iterable[str] = ()) -> str:
    """:func:`config_label`, or its head plus a short hash where W&B's 64-character limit would
    cut it."""
    label = config_label(overrides, shared)
    if len(label) <= WANDB_JOB_TYPE_MAX:
        return label
    digest = hashlib.sha1(label.encode("utf-8")).hexdigest()[:8]
    return f"{label[: WANDB_JOB_TYPE_MAX - 9]}~{digest}"


def shared_overrides(jobs: Iterable[Iterable[str]]) -> set[str]:
    """The overrides every job names (none for a single job: then nothing is shared)."""
    sets = [set(map(str, job)) for job in jobs]
    return set.intersection(*sets) if len(sets) > 1 else set()


def shared_by_configurations(jobs: Iterable[Iterable[str]]) -> set[str]:
    """The overrides every configuration names (none when the jobs are replicates of one)."""
    return shared_overrides({tuple(config_overrides(job)) for job in jobs})
