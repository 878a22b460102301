"""Data-parallel training across processes (``torchrun``): every copy joins one process group
before any config is composed (:func:`init_from_env`); only rank 0 writes the run record,
checkpoints and the W&B run.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from resnet_exp.errors import UserError
from resnet_exp.tracking.record import RunRecord, RunSummary, is_epoch_row
from resnet_exp.training.facts import launched_by_torchrun

log = logging.getLogger("resnet_exp")


class DistributedConfigError(UserError):
    """A distributed-training setting that cannot work on this machine."""


@dataclass(frozen=True)
class Dist:
    """This process's place in a data-parallel run (world_size 1 = an ordinary single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- collectives (no-ops in one process) ---------------------------------------------------
    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        return tensor

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (any picklable object)."""
        if not self.enabled:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()


def from_env() -> Dist:
    """This process's place, from torchrun's environment variables (a plain run: rank 0 of 1)."""
    env = os.environ
    if not launched_by_torchrun():
        return Dist()
    world = int(env["WORLD_SIZE"])
    return Dist(
        rank=int(env["RANK"]),
        world_size=world,
        local_rank=int(env["LOCAL_RANK"]),
        local_world_size=int(env.get("LOCAL_WORLD_SIZE", world)),
    )


_CURRENT = Dist()


def current() -> Dist:
    """The Dist that :func:`init_from_env` set up in this process (rank 0 of 1 if none)."""
    return _CURRENT


def backend() -> str:
    """gloo on CPU-only machines; with CUDA, NCCL for CUDA tensors and gloo for CPU ones."""
    dist = torch.distributed
    if torch.cuda.is_available() and dist.is_nccl_available():
        return "cpu:gloo,cuda:nccl"
    return "gloo"


def init_from_env() -> tuple[Dist, datetime]:
    """Join torchrun's process group (if torchrun launched this process); this process's Dist
    and rank 0's start time (the same on every rank). Must run before any config is composed."""
    global _CURRENT
    dist = from_env()
    if not dist.enabled:
        return dist, datetime.now()
    if not torch.distributed.is_available():
        raise DistributedConfigError(
            "torchrun started this process but this torch build has no torch.distributed; "
            "run without torchrun."
        )
    if not torch.distributed.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(dist.local_rank % max(torch.cuda.device_count(), 1))
        torch.distributed.init_process_group(backend=backend())
    _CURRENT = dist
    return dist, dist.broadcast(datetime.now())


def shutdown() -> None:
    """Leave the process group (end of the command)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def agree_on_run_dir(dist: Dist, run_dir: Path) -> Path:
    """Rank 0's run directory, on every rank (a collective). Warns if this rank's differed."""
    if not dist.enabled:
        return run_dir
    main_dir = Path(dist.broadcast(str(Path(run_dir).resolve())))
    if main_dir != Path(run_dir).resolve():
        msg = "rank %d resolved run dir %s but rank 0 uses %s; following rank 0"
        log.warning(msg, dist.rank, run_dir, main_dir)
        with contextlib.suppress(OSError):  # the empty directory Hydra made for this rank
            Path(run_dir).rmdir()
    return main_dir


def device_for(dist: Dist, device: torch.device) -> torch.device:
    """Each rank its own GPU (``cuda:LOCAL_RANK``) when the device is an unnumbered ``cuda``; a
    numbered GPU becomes the process's current one (code that asks for "the" GPU gets it)."""
    if dist.enabled and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", dist.local_rank)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    return device


def wrap_model(
    model: torch.nn.Module, dist: Dist, device: torch.device, sync_bn: bool
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(model, trained module): the model (SyncBatchNorm'ed if asked), which checkpoints store
    (no ``module.`` prefix: a DDP checkpoint resumes in one process), and its DDP wrapper."""
    if not dist.enabled:
        if sync_bn:
            log.info("trainer.sync_bn has no effect in one process (BN already sees the batch)")
        return model, model
    if sync_bn:
        if device.type == "cpu":
            raise DistributedConfigError(
                "trainer.sync_bn=true needs GPUs: torch's SyncBatchNorm does not run on CPU "
                "tensors. Use trainer.sync_bn=false on CPU (each rank then normalises over its own "
                "share of the batch)."
            )
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return model, torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def weights_checksum(model: torch.nn.Module) -> str:
    """SHA-256 of the model's parameters (names, shapes and bytes, in order): equal on every rank
    after a correct data-parallel run. BatchNorm's running statistics are buffers and are left out:
    each rank updates them from its own shard after the last broadcast, so they may differ."""
    digest = hashlib.sha256()
    for name, param in model.named_parameters():
        digest.update(f"{name}:{tuple(param.shape)}".encode())
        digest.update(param.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class MainOnlyRecord(RunRecord):
    """The run record as ranks > 0 see it: reads work, writes are rank 0's job and do nothing."""

    def truncate_metrics(self, last_epoch: int, last_step: int | None = None) -> list[dict]:
        return [r for r in self.read_metrics() if is_epoch_row(r) and r["epoch"] <= last_epoch]

    def append_metrics(self, row: dict) -> None:
        return None

    def write_summary(self, summary: RunSummary) -> None:
        return None


def record_for(dist: Dist, run_dir: Path) -> RunRecord:
    return RunRecord(run_dir) if dist.is_main else MainOnlyRecord(run_dir)


def agree_on_resume(dist: Dist, decide: Callable[[], Path | None]) -> Path | None:
    """Rank 0 decides which checkpoint to resume from (or none); every rank gets the same answer,
    then waits until all have it, so no rank looks at the run directory while rank 0 writes."""
    path = dist.broadcast(decide() if dist.is_main else None)
    dist.barrier()
    return None if path is None else Path(path)
