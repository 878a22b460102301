"""Launcher helpers for sweeps (``hydra/launcher=joblib|slurm|submitit_local``).

:func:`local_jobs` is ``${resnet_exp.local_jobs:}`` (bound in ``register.py``), the default
``n_jobs`` of ``conf/hydra/launcher/joblib.yaml`` (one job per core on a CPU-only machine; where a
GPU is visible, as many jobs as share it well, :func:`gpu_jobs`); :func:`parallel_jobs` turns a
joblib ``n_jobs`` into the number of jobs that share this machine, from which each job takes its
share of the cores (``trainer.num_threads=null``). The SLURM launcher is
``hydra_plugins/resnet_exp_launcher`` (Hydra insists on that namespace).
"""

from __future__ import annotations

from typing import Any

from resnet_exp.training.cpus import available_cpus

#: GPU memory set aside for each local job that shares one GPU: a CUDA context (~0.5 GiB), cuDNN and
#: cuBLAS workspaces, the dataset held on the device and a CIFAR-size ResNet's activations at batch
#: 128 stay well under it. Bigger nets (ImageNet family, large batches): set hydra.launcher.n_jobs.
GPU_GIB_PER_JOB = 4
#: Cores per job on a GPU: one drives the GPU (Python and kernel launches), one for everything else.
CPUS_PER_GPU_JOB = 2


def gpu_jobs(free_bytes: int, cpus: int) -> int:
    """How many jobs train side by side on one GPU with ``free_bytes`` free and ``cpus`` cores.

    One small ResNet at batch 128 keeps a big GPU mostly idle: its step is bound by Python and
    kernel launches, not by the GPU. Jobs in their own processes fill the gaps of each other, up to
    what the GPU's free memory and the cores that drive it allow."""
    by_memory = free_bytes // (GPU_GIB_PER_JOB * 2**30)
    by_cpus = cpus // CPUS_PER_GPU_JOB
    return int(max(1, min(by_memory, by_cpus)))


def local_jobs() -> int:
    """Default joblib ``n_jobs``: every core on a CPU-only machine; where a GPU is visible, the jobs
    that share it well (:func:`gpu_jobs`, from its free memory and this machine's cores; all local
    jobs train on the first GPU)."""
    import torch

    if not torch.cuda.is_available():
        return available_cpus()
    free, _total = torch.cuda.mem_get_info()
    return gpu_jobs(free, available_cpus())


def parallel_jobs(n_jobs: Any) -> int:
    """How many jobs run side by side for joblib's ``n_jobs`` (-1 all cores, -2 all but one...)."""
    if n_jobs is None:
        return 1
    n = int(n_jobs)
    if n < 0:
        n = available_cpus() + 1 + n
    return max(n, 1)
