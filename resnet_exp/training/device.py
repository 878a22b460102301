"""Device and precision, checked against the machine at hand before the first step."""

from __future__ import annotations

import torch

from resnet_exp.errors import UserError
from resnet_exp.training.facts import PRECISIONS


class DeviceUnavailable(UserError):
    """The requested device or precision does not exist on this machine."""


def resolve_device(name: str) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit choice must be available."""
    name = str(name)
    base = name.split(":")[0]
    if base == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(
            f"trainer.device={name!r} but no CUDA GPU is visible to torch "
            f"{torch.__version__}; use trainer.device=auto or trainer.device=cpu."
        )
    if base == "mps" and not torch.backends.mps.is_available():
        raise DeviceUnavailable(
            f"trainer.device={name!r} but MPS is not available here; use trainer.device=auto|cpu."
        )
    return torch.device(name)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``trainer.precision``, or None for full fp32."""
    dtype = precision_dtype(precision)
    if dtype is torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceUnavailable(
            "trainer.precision=bf16 but this GPU has no bf16 support; use trainer.precision=16, "
            "32 or auto."
        )
    return dtype


def precision_dtype(precision: str) -> torch.dtype | None:
    """The torch dtype of an explicit ``trainer.precision`` (None: full fp32); no device check."""
    try:
        name = PRECISIONS[str(precision)]
    except KeyError:
        known = ", ".join(PRECISIONS)
        raise ValueError(f"precision={precision!r}; explicit ones: {known}") from None
    return None if name is None else getattr(torch, name)
