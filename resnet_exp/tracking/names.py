"""Which overrides name a job: one rule for its folder, its report label and its W&B run.

A job is known by its own overrides minus those that do not change what it computes (where the data
lies, how it is logged, whether it resumes: :data:`MACHINE_KEYS`). From those:

- :func:`folder_name`: its folder in the sweep (sorted, so the order on the command line does not
  matter; file-name safe; a hash of the full text so two configurations never share a folder);
- :func:`run_name`: its W&B run name (the overrides every job of the sweep shares left out);
- :func:`config_key`: its configuration, the same without the seed (replicates share it; the
  report groups by it), and :func:`config_label`, the part of it that sets it apart from the
  sweep's other configurations (the report's tables; within 64 characters, W&B's ``job_type``).

Hydra's own ``hydra.job.override_dirname`` leaves out the same keys (``conf/config.yaml`` reads
them through ``${resnet_exp.machine_keys:}``). Plain strings in, plain strings out: no Hydra here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

#: Overrides that do not change what a job computes, so a sweep re-run from another data folder or
#: with another logger finds its jobs, and no local path is uploaded in a W&B run's name.
MACHINE_KEYS = (
    "data.root",
    "data.download",
    "data.num_workers",
    "data.eval_batch_size",
    "trainer.resume",
    "trainer.progress",
    "logger",
    "logger.mode",
    "logger.project",
    "logger.entity",
)
#: Replicates of one configuration differ only in these.
SEED_KEYS = ("seed",)
WANDB_JOB_TYPE_MAX = 64
_READABLE = 80  # characters of the overrides kept in a folder name before the hash
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]+")


def override_key(override: str) -> str:
    """``+model/depth@x=8`` -> ``model/depth``: the key or group, as Hydra's ``key_or_group``."""
    return str(override).lstrip("+~").split("=", 1)[0].split("@", 1)[0]


def naming_overrides(overrides: Iterable[str]) -> list[str]:
    """The overrides that change what a job computes, in their order."""
    return [str(o) for o in overrides if override_key(o) not in MACHINE_KEYS]


def folder_name(overrides: Iterable[str]) -> str:
    """``[seed=1, model/depth=8]`` -> ``model_depth=8,seed=1-<hash>``: a job's folder in its sweep.

    The text is Hydra's ``override_dirname`` (the naming overrides sorted and comma-joined), so the
    folders of sweeps started before this function existed are found again."""
    return job_dirname(",".join(sorted(naming_overrides(overrides))))


def job_dirname(override_dirname: str) -> str:
    """``model/depth=8,seed=1`` -> ``model_depth=8,seed=1-<hash>``; ``default-<hash>`` for none."""
    readable = _UNSAFE.sub("_", override_dirname).strip("._-")[:_READABLE].rstrip("._-,")
    digest = hashlib.sha1(override_dirname.encode("utf-8")).hexdigest()[:8]
    return f"{readable or 'default'}-{digest}"


def run_name(overrides: Iterable[str], shared: Iterable[str] = ()) -> str:
    """The W&B run name: the naming overrides not ``shared`` by every job of the sweep."""
    common = set(shared)
    return ",".join(o for o in naming_overrides(overrides) if o not in common) or "default"


def config_overrides(overrides: Iterable[str]) -> list[str]:
    """The naming overrides without the seed, in their order: what replicates share."""
    return [o for o in naming_overrides(overrides) if override_key(o) not in SEED_KEYS]


def config_key(overrides: Iterable[str]) -> str:
    """The configuration: :func:`config_overrides` comma-joined ('default' if none)."""
    return ",".join(config_overrides(overrides)) or "default"


def config_label(overrides: Iterable[str], shared: Iterable[str] = ()) -> str:
    """The configuration as the report's tables and W&B's ``job_type`` call it: its
    :func:`config_overrides` that not every configuration of the sweep has (``shared``, from
    :func:`shared_by_configurations`), or its whole :func:`config_key` when none are left."""
    common = set(shared)
    kept = [o for o in config_overrides(overrides) if o not in common]
    return ",".join(kept) or config_key(overrides)


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
