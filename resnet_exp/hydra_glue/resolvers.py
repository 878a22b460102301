"""Launcher helpers for sweeps (``hydra/launcher=joblib|slurm|submitit_local``).

:func:`register_resolvers` adds ``${resnet_exp.local_jobs:}``, the default ``n_jobs`` of
``conf/hydra/launcher/joblib.yaml`` (one job per core on a CPU-only machine; where GPUs are
visible, one per slot of :mod:`resnet_exp.hydra_glue.gpu_slots`); :func:`parallel_jobs` turns a
joblib ``n_jobs`` into the number of jobs that share this machine, from which each job takes its
share of the cores (``trainer.num_threads=null``). The SLURM launcher is
``hydra_plugins/resnet_exp_launcher`` (Hydra insists on that namespace).
"""

from __future__ import annotations

import os
from typing import Any

from resnet_exp.training.threads import available_cpus


def local_jobs() -> int:
    """Default joblib ``n_jobs``: every core on a CPU-only machine; where GPUs are visible, one job
    per slot of :func:`resnet_exp.hydra_glue.gpu_slots.plan` (each GPU's free memory // 4 GiB, at
    most cores // 2 in all), handed to the workers, which train on their slot's GPU and cores."""
    from resnet_exp.hydra_glue import gpu_slots

    if os.environ.get(gpu_slots.PLAN_ENV):  # a joblib worker: the parent planned the slots
        return len(gpu_slots.from_env(os.environ[gpu_slots.PLAN_ENV]))
    slots = gpu_slots.this_machine()  # every visible GPU (gpu_slots.py), [] without one
    if not slots:
        return available_cpus()
    gpu_slots.publish(slots)
    return len(slots)


def parallel_jobs(n_jobs: Any) -> int:
    """How many jobs run side by side for joblib's ``n_jobs`` (-1 all cores, -2 all but one...)."""
    if n_jobs is None:
        return 1
    n = int(n_jobs)
    if n < 0:
        n = available_cpus() + 1 + n
    return max(n, 1)
