"""The training layer's names that the config layer checks before torch is imported (torch-free);
the training code maps and raises with the same tables.
"""

from __future__ import annotations

import os

AUTO = "auto"

#: Each explicit ``trainer.precision`` and the torch dtype autocast runs in (None: full fp32).
PRECISIONS: dict[str, str | None] = {"32": None, "bf16": "bfloat16", "16": "float16"}

#: ``trainer.precision`` as the config accepts it: an explicit precision or ``auto``.
PRECISION_CHOICES = (*PRECISIONS, AUTO)

#: ``trainer.channels_last`` / ``trainer.compile``: on, off, or decided per device.
SWITCH_CHOICES = (True, False, AUTO)

#: ``trainer.device`` names (``cuda:N`` is accepted too).
DEVICES = (AUTO, "cpu", "cuda", "mps")

#: The variables torchrun sets in every process it starts; all present means "under torchrun".
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def launched_by_torchrun() -> bool:
    """Whether torchrun started this process (every one of its variables is set)."""
    return all(k in os.environ for k in TORCHRUN_VARS)


def is_rank_zero() -> bool:
    """True in a plain process and on torchrun's rank 0: the process that keeps the run record."""
    return os.environ.get("RANK", "0") == "0"
