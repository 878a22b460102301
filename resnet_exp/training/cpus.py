"""How many CPU cores this process may use (no torch import: the config resolvers need it early)."""

from __future__ import annotations

import os


def available_cpus() -> int:
    """Cores in this process's affinity mask (what SLURM or taskset granted), else all cores."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1
