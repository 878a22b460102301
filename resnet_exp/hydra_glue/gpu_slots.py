"""Every GPU of a node for a joblib sweep: slots, each a device and its share of the cores.

Hydra's joblib launcher knows nothing of GPUs: every job trains on the first one (Hydra issues
#2757, #3002). Here the sweep's parent, sizing the default ``n_jobs``, also plans *slots*
(:func:`plan`), handed to the workers in :data:`PLAN_ENV`; each job ``flock``s the first free slot
(:func:`claim`), trains on its ``cuda:i`` with its threads pinned to its cores, and frees it when
its process ends, however it ends.
A job asked for a numbered device (``trainer.device=cuda:1``) or a CPU keeps it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from resnet_exp.tracking.folder_lock import try_flock
from resnet_exp.training.threads import available_cpus

#: The parent's plan, as JSON, in the environment its joblib workers inherit.
PLAN_ENV = "RESNET_EXP_JOBLIB_SLOTS"
SLOT_DIR = ".joblib-slots"  # in the sweep folder: one lock file per slot
log = logging.getLogger("resnet_exp")
GIB = 2**30
#: GPU memory set aside for each job on a GPU: a CIFAR-size ResNet at batch 128, its data and a
#: CUDA context stay well under it. Bigger nets (ImageNet family): set hydra.launcher.n_jobs.
GPU_GIB_PER_JOB = 4
#: Cores per job on a GPU: one drives the GPU (Python and kernel launches), one for everything else.
CPUS_PER_GPU_JOB = 2


@dataclass(frozen=True)
class Slot:
    number: int
    device: str  # "cuda:1"
    cores: tuple[int, ...]

    def describe(self, slots: int | None = None) -> str:
        first, last = self.cores[0], self.cores[-1]
        span = f"core {first}" if first == last else f"cores {first}-{last}"
        of = f" of {slots}" if slots else ""
        return f"{self.device} (joblib slot {self.number}{of}, {span})"


def plan(free_bytes: Sequence[int], cores: Sequence[int]) -> list[Slot]:
    """The slots for GPUs with ``free_bytes`` free each and these ``cores``: per GPU
    ``free // GPU_GIB_PER_JOB GiB`` jobs, at most ``len(cores) // CPUS_PER_GPU_JOB`` (at least 1)
    in all, dealt to the GPUs in turn (slot 0 on cuda:0, slot 1 on cuda:1, ...), each with its own
    contiguous block of cores; [] without a GPU.

    One small ResNet at batch 128 keeps a big GPU mostly idle (its step is bound by Python and
    kernel launches), so jobs in their own processes fill each other's gaps, up to what the GPU's
    memory and the cores that drive it allow."""
    if not free_bytes:
        return []
    room = [int(free) // (GPU_GIB_PER_JOB * GIB) for free in free_bytes]
    cap = max(1, len(cores) // CPUS_PER_GPU_JOB)
    devices: list[int] = []
    while len(devices) < cap and len(devices) < sum(room):
        for gpu in range(len(room)):
            if devices.count(gpu) < room[gpu] and len(devices) < cap:
                devices.append(gpu)
    if not devices:  # no GPU has 4 GiB free: one job, on the GPU with the most
        devices = [max(range(len(free_bytes)), key=lambda g: free_bytes[g])]
    per, extra = divmod(len(cores), len(devices))
    slots, start = [], 0
    for number, gpu in enumerate(devices):
        size = max(1, per + (1 if number < extra else 0))
        block = tuple(cores[start : start + size]) or (cores[number % len(cores)],)
        start += size
        slots.append(Slot(number, f"cuda:{gpu}", block))
    return slots


def to_env(slots: list[Slot]) -> str:
    return json.dumps([[s.number, s.device, list(s.cores)] for s in slots])


def from_env(text: str | None) -> list[Slot]:
    if not text:
        return []
    return [Slot(int(n), str(d), tuple(int(c) for c in cores)) for n, d, cores in json.loads(text)]


def this_machine() -> list[Slot]:
    """The plan for this machine's visible GPUs and this process's cores ([] without a GPU)."""
    import torch  # here: the resolver that plans slots runs before anything else needs torch

    if not torch.cuda.is_available():
        return []
    free = [torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count())]
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        cores = list(range(available_cpus()))
    return plan(free, cores)


def publish(slots: list[Slot]) -> None:
    """In the sweep's parent: hand the plan to the joblib workers it is about to start."""
    os.environ[PLAN_ENV] = to_env(slots)


def predicted(job_number: int, slots: list[Slot]) -> str:
    """``--cfg job``'s line: the slot job ``job_number`` gets when jobs take equally long (the
    first len(slots) jobs take a slot each; later ones the slot that frees first)."""
    slot = slots[job_number % len(slots)]
    later = "" if job_number < len(slots) else ", or whichever slot frees first"
    return f"device: {slot.describe(len(slots))}{later}"


class _Claim:
    """The lock this process holds on its slot (one at a time: a worker's next job replaces it)."""

    fd: int | None = None

    @classmethod
    def release(cls) -> None:
        if cls.fd is not None:
            os.close(cls.fd)  # closing drops the lock
            cls.fd = None


def claim(slots: list[Slot], sweep_dir: Path) -> Slot | None:
    """The first slot no running job of this sweep holds, locked for this process; None when all
    are held (more jobs than slots: hydra.launcher.n_jobs set by hand)."""
    _Claim.release()
    folder = sweep_dir / SLOT_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for slot in slots:
            fd = try_flock(folder / f"{slot.number}.lock", mode=0o600)
            if fd is not None:
                _Claim.fd = fd
                return slot
    except OSError as error:  # an odd slot folder (a file, a link, unwritable): train anyway
        log.warning("GPU slots in %s cannot be used (%s); this job takes the default device",
                    folder, error)  # fmt: skip
    return None


def release() -> None:
    """The job is over: its slot is free for the next job."""
    _Claim.release()


def for_job(device_setting: str, sweep_dir: Path | None, distributed: bool) -> Slot | None:
    """This joblib job's slot, when the parent planned slots and the job lets us choose its GPU
    (``trainer.device`` ``auto`` or ``cuda``); else None (today's device choice)."""
    slots = from_env(os.environ.get(PLAN_ENV))
    if not slots or sweep_dir is None or distributed or device_setting not in ("auto", "cuda"):
        return None
    return claim(slots, sweep_dir)
