"""Device and precision choices, resolved once and validated before the first step.

``auto`` for the speed switches (precision, channels_last, compile) is resolved in
:mod:`resnet_exp.training.speed`, which uses :func:`autocast_dtype` here for the final check.
"""

from __future__ import annotations

import torch

from resnet_exp.errors import UserError

PRECISIONS = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}
DEVICES = ("auto", "cpu", "cuda", "mps")


class DeviceUnavailable(UserError):
    """The requested device or precision does not exist on this machine."""


def resolve_device(name: str) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit choice must be available."""
    name = str(name)
    base = name.split(":")[0]
    if base not in DEVICES:
        raise DeviceUnavailable(
            f"trainer.device={name!r} is not a device choice; valid: {', '.join(DEVICES)} "
            "(cuda:N picks a GPU)."
        )
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
    precision = str(precision)
    if precision not in PRECISIONS:
        raise DeviceUnavailable(
            f"trainer.precision={precision!r} is not a precision choice; valid: 32, bf16, 16."
        )
    dtype = PRECISIONS[precision]
    if dtype is torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceUnavailable(
            "trainer.precision=bf16 but this GPU has no bf16 support; use trainer.precision=16, "
            "32 or auto."
        )
    return dtype
