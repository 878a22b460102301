"""Start-up under ``torchrun``: join the process group, then hand Hydra this rank's command line.

Every rank resolves ``${now:...}`` in ``hydra.run.dir`` / ``hydra.sweep.dir`` to rank 0's clock, so
all ranks agree on one run folder without the user fixing ``hydra.run.dir``; only rank 0 writes
Hydra's ``.hydra/`` files and the job log (ranks > 0 get ``hydra.output_subdir=null`` and
``hydra/job_logging=stdout``).
"""

from __future__ import annotations

from resnet_exp.hydra_glue.internals import pin_now
from resnet_exp.training.facts import launched_by_torchrun

__all__ = ["launched_by_torchrun", "rank_overrides", "start", "stop"]


def start(argv: list[str]) -> list[str]:
    """Join torchrun's process group; returns the overrides to hand to Hydra on this rank."""
    from resnet_exp.training import distributed

    dist, stamp = distributed.init_from_env()
    if not dist.enabled:
        return list(argv)
    pin_now(stamp)
    return rank_overrides(list(argv), dist.rank)


def rank_overrides(argv: list[str], rank: int) -> list[str]:
    """``argv`` plus, on ranks > 0, the overrides that keep them from writing Hydra's files (unless
    the user set those keys)."""
    if rank == 0:
        return argv
    keys = {a.split("=", 1)[0].lstrip("+~") for a in argv if "=" in a}
    extra = [
        override
        for override in ("hydra.output_subdir=null", "hydra/job_logging=stdout")
        if override.split("=", 1)[0] not in keys
    ]
    return argv + extra


def stop() -> None:
    """Leave the process group (end of the command)."""
    from resnet_exp.training import distributed

    distributed.shutdown()
