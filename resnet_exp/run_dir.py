"""A run folder of its own for every single run, even two started in the same second.

Hydra's default ``outputs/<date>/<time>`` is shared by runs started in the same second (a shell loop
with ``&``, two terminals), and the second would then overwrite the first's ``.hydra/`` files,
append to its metrics and resume from its checkpoints. ``${resnet_exp.fresh_dir:<path>}`` claims
the folder atomically (``mkdir``) and, when another process got there first, takes ``<path>-2``,
``<path>-3``, ... instead. An explicit ``hydra.run.dir=...`` (how a run is resumed) bypasses it.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

RESOLVER = "resnet_exp.fresh_dir"

# Hydra may resolve hydra.run.dir more than once in a process; it must get one answer.
_claimed: dict[str, str] = {}


def fresh_dir(path: str) -> str:
    """``path`` if this process could create it, else the first free ``path-N`` (N >= 2)."""
    if path in _claimed:
        return _claimed[path]
    if os.environ.get("RANK", "0") != "0":
        # torchrun ranks > 0 follow rank 0's folder (distributed.agree_on_run_dir); claiming one
        # here would only leave an empty folder behind.
        return path
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        _claimed[path] = str(candidate)
        return str(candidate)
    raise AssertionError("unreachable")


def register_resolver() -> None:
    """Idempotent; called by :func:`resnet_exp.config.register_configs`."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, fresh_dir)
