"""Checkpoints: everything a bit-identical continuation needs, written atomically, loaded safely."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from resnet_exp.errors import UserError
from resnet_exp.tracking.record import atomic_write_bytes


class CorruptCheckpoint(UserError):
    """A checkpoint that is truncated, not a checkpoint, or would need to run code to load."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Serialise in memory, then write via temp file + fsync + rename: a kill never leaves half a file."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with ``weights_only=True``, so a crafted pickle cannot execute anything."""
    path = Path(path)
    if not path.is_file():
        raise CorruptCheckpoint(
            f"trainer.resume={str(path)!r}: no checkpoint file there. Give the path of a "
            "checkpoints/last.pt written by resnet_exp, or use trainer.resume=auto|never."
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated zip, random bytes, or a pickle that calls code
        raise CorruptCheckpoint(
            f"checkpoint {str(path)!r} cannot be loaded safely ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'no detail'}). It is truncated, "
            "corrupt, or not a resnet_exp checkpoint; it was not executed and nothing was changed. "
            "Delete or move it to start over, or run with trainer.resume=never."
        ) from None
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise CorruptCheckpoint(
            f"checkpoint {str(path)!r} is not a resnet_exp training checkpoint (no model/epoch "
            "entries). Use trainer.resume=never, or point trainer.resume at checkpoints/last.pt."
        )
    return state
