"""How many torch threads a run trains with: decided once per run, never from its neighbours.

A CPU run's numbers depend on its thread count (threads split each reduction differently), so
the count comes only from the run's own launch, in this order: ``trainer.num_threads`` (capped at
the cores this process may use); an earlier attempt's recorded count (a resume continues
bit-identically); its joblib GPU slot's cores; SLURM's CPUs; the cores split among the processes
its launch starts here; else torch's default. :func:`apply` sets it once, before the model is built.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger("resnet_exp")


def wait_passively() -> None:
    """Before torch loads OpenMP: idle threads sleep (unless the user chose ``OMP_WAIT_POLICY``).
    Spinning threads starve each other's work on a shared machine: two 2-thread runs on 2 busy
    cores did 50 img/s each spinning, about 400 sleeping (the report of issue 27)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def available_cpus() -> int:
    """Cores in this process's affinity mask (what SLURM or taskset granted), else all cores."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def slurm_cpus() -> int | None:
    """The CPUs SLURM gave this job's task (``SLURM_CPUS_PER_TASK``), None outside SLURM."""
    value = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return int(value) if value.isdigit() else None


@dataclass(frozen=True)
class Threads:
    """The decision: ``count`` threads (None: torch's default), pinned to ``cores`` if given."""

    count: int | None
    why: str
    cores: tuple[int, ...] = ()
    warning: str | None = None  # a setting the run adjusted, for summary.json's warnings


def decide(
    setting: int | None, *, recorded: int | None = None, slot_cores: Sequence[int] = (),
    parallel_jobs: int = 1, local_processes: int = 1, slurm: int | None = None,
    cores: int | None = None,
) -> Threads:  # fmt: skip
    """This run's threads from its own launch's facts (see the module's docstring for the order)."""
    cores = available_cpus() if cores is None else cores
    if setting:
        if setting <= cores:
            return Threads(int(setting), "trainer.num_threads")
        note = (
            f"trainer.num_threads={setting} is more than the {cores} CPU cores this process may "
            f"use; using {cores} threads."
        )
        return Threads(cores, "trainer.num_threads, capped", warning=note)
    if recorded:
        return Threads(recorded, "recorded by this run's earlier attempt", tuple(slot_cores))
    if slot_cores:
        return Threads(len(slot_cores), "its joblib GPU slot's cores", tuple(slot_cores))
    local = max(local_processes, 1)
    if slurm:
        return Threads(max(1, slurm // local), f"SLURM_CPUS_PER_TASK={slurm}")
    sharers = max(parallel_jobs, 1) * local
    if sharers > 1:
        return Threads(max(1, cores // sharers), f"{cores} cores among {sharers} processes")
    return Threads(None, "torch's default")


def apply(threads: Threads) -> int:
    """Set the decision in this process (affinity first, then torch's threads); log it and return
    the count now in force, which the run records."""
    import torch  # here, not at the top: the config resolvers import this module before torch

    if threads.cores:
        try:
            os.sched_setaffinity(0, threads.cores)
        except (AttributeError, OSError) as exc:  # macOS, or cores outside this process's mask
            log.warning("could not pin to cores %s (%s)", list(threads.cores), exc)
    if threads.warning:
        log.warning(threads.warning)
    if threads.count is not None:
        torch.set_num_threads(threads.count)
    count = torch.get_num_threads()
    log.info("torch intra-op threads: %d (%s; fixed for this run)", count, threads.why)
    return count
