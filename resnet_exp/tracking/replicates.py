"""What makes runs replicates of one configuration: the same overrides apart from the seed.

The sweep report groups runs by `config_key` and W&B groups them by `wandb_job_type` (the same key,
shortened to W&B's 64-character limit), so both show one mean and spread per configuration.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

SEED_KEYS = frozenset({"seed"})
WANDB_JOB_TYPE_MAX = 64


def _key(override: str) -> str:
    return str(override).lstrip("+~").split("=", 1)[0]


def config_key(overrides: Iterable[str]) -> str:
    """The job's overrides without the seed, comma-joined in their order ('default' if none)."""
    kept = [str(o) for o in overrides if _key(o) not in SEED_KEYS]
    return ",".join(kept) or "default"


def wandb_job_type(overrides: Iterable[str]) -> str:
    """`config_key`, or its head plus a short hash where W&B's 64-character limit would cut it."""
    key = config_key(overrides)
    if len(key) <= WANDB_JOB_TYPE_MAX:
        return key
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]
    return f"{key[: WANDB_JOB_TYPE_MAX - 9]}~{digest}"
