"""Device and precision, resolved against the machine at hand before the first step.

The valid names are declared and checked once, in the config layer (:mod:`resnet_exp.config`);
here only what needs this machine is checked: is the GPU there, does it do bf16. ``auto`` for the
speed switches is resolved in :mod:`resnet_exp.training.speed`, which uses :func:`autocast_dtype`.
"""

from __future__ import annotations

import torch

from resnet_exp.errors import UserError

#: The autocast dtype of each explicit ``trainer.precision`` (None: full fp32).
PRECISIONS = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}


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
    try:
        dtype = PRECISIONS[str(precision)]
    except KeyError:
        known = ", ".join(PRECISIONS)
        raise ValueError(f"precision={precision!r}; explicit ones: {known}") from None
    if dtype is torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceUnavailable(
            "trainer.precision=bf16 but this GPU has no bf16 support; use trainer.precision=16, "
            "32 or auto."
        )
    return dtype
