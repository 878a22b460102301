"""Launcher helpers for sweeps (``hydra/launcher=joblib|slurm|submitit_local``).

:func:`register_resolvers` adds ``${resnet_exp.local_jobs:}``, the default ``n_jobs`` of
``conf/hydra/launcher/joblib.yaml`` (one job per core on a CPU-only machine, one at a time where a
GPU is visible); :func:`parallel_jobs` turns a joblib ``n_jobs`` into the number of jobs that share
this machine, from which each job takes its share of the cores (``trainer.num_threads=null``). The
SLURM launcher is ``hydra_plugins/resnet_exp_launcher`` (Hydra insists on that namespace).
"""

from __future__ import annotations

import warnings
from typing import Any

from omegaconf import OmegaConf

from resnet_exp.training.cpus import available_cpus


def local_jobs() -> int:
    """Default joblib ``n_jobs``: every core on a CPU-only machine; 1 where a GPU is visible (all
    local jobs would train on the same GPU)."""
    import torch

    return 1 if torch.cuda.is_available() else available_cpus()


def parallel_jobs(n_jobs: Any) -> int:
    """How many jobs run side by side for joblib's ``n_jobs`` (-1 all cores, -2 all but one...)."""
    if n_jobs is None:
        return 1
    n = int(n_jobs)
    if n < 0:
        n = available_cpus() + 1 + n
    return max(n, 1)


def register_resolvers() -> None:
    """Both of our resolvers (idempotent); called by :func:`resnet_exp.config.register_configs`."""
    # conf/hydra/launcher/joblib.yaml shares its name with the plugin's schema on purpose (so that
    # `hydra/launcher=joblib` is ours, still type-checked); Hydra warns about that pairing.
    warnings.filterwarnings(
        "ignore", message=r"(?s).*'hydra/launcher/joblib' is validated against ConfigStore schema"
    )
    if not OmegaConf.has_resolver("resnet_exp.local_jobs"):
        OmegaConf.register_new_resolver("resnet_exp.local_jobs", local_jobs)
