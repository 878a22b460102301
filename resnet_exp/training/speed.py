"""The speed switches ``trainer.precision``, ``trainer.channels_last`` and ``trainer.compile``.

Each takes an explicit value or ``auto``, which resolves once per run to what was measured faster
on the kind of device at hand (numbers: ``docs/performance.md``), a pure function of
:class:`Capabilities`, so testable on any machine.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from resnet_exp.training.device import autocast_dtype, precision_dtype
from resnet_exp.training.facts import AUTO, PRECISIONS

log = logging.getLogger("resnet_exp")

# A cold compile (~40 s, ResNet-56 fwd+bwd) / ~1 ms saved per GPU step ~= 40k steps to break even.
COMPILE_AUTO_MIN_STEPS = 40_000
SWITCHES = ("precision", "channels_last", "compile")  # the trainer keys, as SpeedChoice names them


@dataclass(frozen=True)
class Capabilities:
    """What the speed decisions depend on, for one device."""

    device_type: str  # cpu | cuda | mps
    cuda_bf16: bool = False
    cuda_capability: tuple[int, int] | None = None
    cpu_bf16: bool = False  # native bf16 instructions: AVX512-BF16 or AMX-BF16
    cpu_capability: str = ""  # torch.backends.cpu.get_cpu_capability(), e.g. AVX2, AVX512
    triton: bool = False


@dataclass(frozen=True)
class SpeedChoice:
    """The resolved switches, and for each ``auto`` one the reason it resolved as it did."""

    precision: str  # "32" | "bf16" | "16"
    channels_last: bool
    compile: bool
    reasons: Mapping[str, str] = field(default_factory=dict)

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype, or None for full fp32."""
        return precision_dtype(self.precision)

    def as_dict(self) -> dict[str, Any]:
        """For summary.json: the resolved values and why ``auto`` chose them."""
        return {**{key: getattr(self, key) for key in SWITCHES}, "auto": dict(self.reasons)}

    def describe(self) -> str:
        parts = []
        for key in SWITCHES:
            why = self.reasons.get(key)
            value = str(getattr(self, key)).lower()  # true/false as the config spells them
            parts.append(f"{key}={value}" + (f" (auto: {why})" if why else ""))
        return ", ".join(parts)


def _cpu_has_native_bf16() -> bool:
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        return any(bool(getattr(cpu, name)()) for name in checks if hasattr(cpu, name))
    except Exception:  # private helpers: a torch without them just means "not known to have it"
        return False


def probe(device: torch.device) -> Capabilities:
    """Read the capabilities of ``device`` from torch (cheap; no kernels run)."""
    kind = device.type
    if kind == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return Capabilities(
            "cuda",
            cuda_bf16=bool(torch.cuda.is_bf16_supported()),
            cuda_capability=tuple(torch.cuda.get_device_capability(index)),
            triton=importlib.util.find_spec("triton") is not None,
        )
    if kind == "cpu":
        return Capabilities(
            "cpu",
            cpu_bf16=_cpu_has_native_bf16(),
            cpu_capability=str(torch.backends.cpu.get_cpu_capability()),
        )
    return Capabilities(kind)


def parse_switch(key: str, value: Any) -> bool | None:
    """``true``/``false`` -> bool; ``auto`` (or null) -> None; else (plain Python) a ValueError."""
    if isinstance(value, bool):
        return value
    if value is None or str(value).strip().lower() == AUTO:
        return None
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise ValueError(f"{key}={value!r}; expected true, false or auto")


def parse_precision(value: Any) -> str:
    """An explicit precision (a key of PRECISIONS) or ``auto``; otherwise a ValueError."""
    text = str(value).strip().lower()
    if text != AUTO and text not in PRECISIONS:
        raise ValueError(f"precision={value!r}; expected auto or one of {', '.join(PRECISIONS)}")
    return text


def _auto_precision(caps: Capabilities) -> tuple[str, str]:
    if caps.device_type == "cuda":
        if caps.cuda_bf16:
            return "bf16", "CUDA GPU with bf16 support"
        if caps.cuda_capability is not None and caps.cuda_capability >= (7, 0):
            return "16", "tensor-core GPU without bf16: fp16 with a GradScaler"
        return "32", "GPU without tensor cores"
    if caps.device_type == "cpu" and caps.cpu_bf16:
        return "bf16", "CPU with native bf16 (AVX512-BF16/AMX)"
    if caps.device_type == "cpu":
        what = caps.cpu_capability or "unknown"
        return "32", f"CPU ({what}) has no native bf16; bf16 is emulated"
    return "32", f"{caps.device_type}: fp32"


def _auto_channels_last(caps: Capabilities) -> tuple[bool, str]:
    if caps.device_type == "cuda":
        return True, "NHWC cuDNN kernels on CUDA"
    if caps.device_type == "cpu":
        return True, "oneDNN's NHWC convolutions measured 1.0-1.2x faster on CPU"
    return False, f"not measured on {caps.device_type}; NCHW kept"


def _auto_compile(caps: Capabilities, planned_steps: int | None) -> tuple[bool, str]:
    if caps.device_type != "cuda":
        return False, f"cold compile (30-40 s) outweighs any gain on {caps.device_type}"
    if not caps.triton:
        return False, "Triton is not installed"
    if planned_steps is None or planned_steps < COMPILE_AUTO_MIN_STEPS:
        return False, (
            f"{planned_steps} planned steps < {COMPILE_AUTO_MIN_STEPS}: a short run does not "
            "earn back the cold compile"
        )
    return True, f"{planned_steps} planned steps on CUDA: worth the cold compile"


def resolve(
    precision: Any, channels_last: Any, compile: Any, caps: Capabilities,
    planned_steps: int | None = None,
) -> SpeedChoice:  # fmt: skip
    """Resolve the three switches for a device with ``caps`` (pure: no torch calls)."""
    reasons: dict[str, str] = {}
    prec = parse_precision(precision)
    if prec == AUTO:
        prec, reasons["precision"] = _auto_precision(caps)
    cl = parse_switch("channels_last", channels_last)
    if cl is None:
        cl, reasons["channels_last"] = _auto_channels_last(caps)
    comp = parse_switch("compile", compile)
    if comp is None:
        comp, reasons["compile"] = _auto_compile(caps, planned_steps)
    return SpeedChoice(prec, cl, comp, reasons)


def choose(trainer: Any, device: torch.device, planned_steps: int | None = None) -> SpeedChoice:
    """Resolve ``trainer.precision/channels_last/compile`` for ``device``; check and log it."""
    caps = probe(device)
    choice = resolve(trainer.precision, trainer.channels_last, trainer.compile, caps, planned_steps)
    autocast_dtype(choice.precision, device)  # an explicit bf16 on a GPU without it fails here
    if choice.precision == "bf16" and caps.device_type == "cpu" and not caps.cpu_bf16:
        log.warning(
            "trainer.precision=bf16 on a CPU without native bf16 (%s): autocast emulates it and is "
            "several times slower than fp32; trainer.precision=auto picks 32 here.",
            caps.cpu_capability,
        )
    log.info("speed switches: %s", choice.describe())
    return choice
