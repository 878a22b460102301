"""What each launcher can do here, declared once per launcher class (:data:`TRAITS`, read through
:func:`launcher_traits` by the job's facts, the preflight and the dry sweep): run its jobs side by
side on this machine (each then takes its share of the cores), give each a GPU slot
(:mod:`gpu_slots`), and which options it would only refuse mid-sweep. Any other launcher runs
each job with resources of its own. Also joblib's default ``n_jobs`` and the launchers only the
``scale`` extra brings."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any

from omegaconf import DictConfig, OmegaConf

from resnet_exp.hydra_glue import gpu_slots
from resnet_exp.hydra_glue.internals import BASIC_LAUNCHER
from resnet_exp.slurm_queue import never_fits
from resnet_exp.training.threads import available_cpus

LOCAL_JOBS = "resnet_exp.local_jobs"  # the resolver behind conf/hydra/launcher/joblib.yaml's n_jobs
#: hydra/launcher options that need the scale extra
SCALE_LAUNCHERS = frozenset({"slurm", "local", "submitit_slurm", "submitit_local"})


@dataclass(frozen=True)
class LauncherTraits:
    local_parallel: bool = False  # jobs run side by side in worker processes of this machine
    gpu_slots: bool = False  # each job takes a slot of this machine's GPUs (n_jobs left to us)
    parallel_jobs: int = 1  # jobs training side by side here: each takes that share of the cores
    in_process: bool = False  # each job runs in the sweep's own process, one at a time
    #: the problem, in words, with options the launcher would only refuse mid-sweep; else None
    check_options: Callable[[DictConfig], str | None] | None = None


def _joblib_problem(launcher: DictConfig) -> str | None:
    options: dict = {}
    try:
        import joblib  # heavy: only a joblib sweep needs it

        options = OmegaConf.to_container(launcher, resolve=True)
        options.pop("_target_", None)
        options["backend"] = "loky"  # what Hydra's joblib launcher always uses
        joblib.Parallel(**options)
        joblib.effective_n_jobs(options.get("n_jobs"))
    except Exception as error:  # joblib's own rejection, whatever its type
        return (
            f"the joblib launcher rejects its options ({type(error).__name__}: {error}); "
            f"hydra.launcher is {options}. Fix the hydra.launcher.<option> override (e.g. "
            "hydra.launcher.n_jobs=2; n_jobs=-1 uses every core)."
        )
    return None


def _slurm_problem(launcher: DictConfig) -> str | None:
    """A job no node of its partition can hold pends forever: refused before it is submitted."""
    cpus = int(launcher.get("cpus_per_task") or 1) * int(launcher.get("tasks_per_node") or 1)
    return never_fits(launcher.get("partition"), cpus, float(launcher.get("mem_gb") or 0))


#: launcher class (``hydra.launcher._target_``) -> what it can do; any other: LauncherTraits()
TRAITS = {
    "hydra_plugins.resnet_exp_launcher._slurm.SlurmLauncher": LauncherTraits(
        check_options=_slurm_problem
    ),
    BASIC_LAUNCHER: LauncherTraits(in_process=True),
    "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher": LauncherTraits(
        local_parallel=True, gpu_slots=True, check_options=_joblib_problem
    ),
}


def launcher_traits(launcher: DictConfig | None) -> LauncherTraits:
    """What the launcher this Hydra ``launcher`` node builds can do here."""
    target = OmegaConf.select(launcher, "_target_", default="") if launcher is not None else ""
    traits = TRAITS.get(str(target), LauncherTraits())
    if not traits.local_parallel:
        return traits
    ours = LOCAL_JOBS in str(OmegaConf.to_container(launcher, resolve=False).get("n_jobs"))
    return dataclasses.replace(traits, gpu_slots=traits.gpu_slots and ours,
                               parallel_jobs=parallel_jobs(launcher.get("n_jobs")))  # fmt: skip


def parallel_jobs(n_jobs: Any) -> int:
    """How many jobs run side by side for joblib's ``n_jobs`` (-1 all cores, -2 all but one...)."""
    if n_jobs is None:
        return 1
    n = int(n_jobs)
    if n < 0:
        n = available_cpus() + 1 + n
    return max(n, 1)


def local_jobs() -> int:
    """Default joblib ``n_jobs``: every core on a CPU-only machine; where GPUs are visible, one job
    per slot of :func:`gpu_slots.plan` (each GPU's free memory // 4 GiB, at most cores // 2 in
    all), handed to the workers, which train on their slot's GPU and cores."""
    if os.environ.get(gpu_slots.PLAN_ENV):  # a joblib worker: the parent planned the slots
        return len(gpu_slots.from_env(os.environ[gpu_slots.PLAN_ENV]))
    slots = gpu_slots.this_machine()  # every visible GPU (gpu_slots.py), [] without one
    if not slots:
        return available_cpus()
    gpu_slots.publish(slots)
    return len(slots)


def planned_slots(traits: LauncherTraits) -> list[gpu_slots.Slot]:
    """The GPU slots a sweep with these traits plans on this machine ([] without)."""
    if not traits.gpu_slots:
        return []
    return gpu_slots.from_env(os.environ.get(gpu_slots.PLAN_ENV)) or gpu_slots.this_machine()


def scale_extra_installed() -> bool:
    """Whether submitit and Hydra's submitit launcher (the ``scale`` extra) are installed."""
    try:
        return all(find_spec(m) for m in ("submitit", "hydra_plugins.hydra_submitit_launcher"))
    except ImportError:
        return False


#: hydra/sweeper=optuna's choices (the sweeper maps each sampler to Optuna's class)
OPTUNA_CHOICES = {"sampler": ("tpe", "random", "grid"), "direction": ("minimize", "maximize")}


def tune_extra_installed() -> bool:
    """Whether Optuna (the ``tune`` extra, for ``hydra/sweeper=optuna``) is installed."""
    return find_spec("optuna") is not None
