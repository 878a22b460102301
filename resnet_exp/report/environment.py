"""The environment a report states: versions, the CPU and its relevant flags, the runs' devices;
read without importing torch (package metadata and /proc/cpuinfo)."""

from __future__ import annotations

import importlib.metadata
import platform
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from resnet_exp.report.aggregate import RunResult

# Flags that decide CPU training speed (fp32 SIMD width, native bf16, AMX).
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_facts(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, list[str]]:
    """CPU model name and which of SPEED_FLAGS it has ('unknown', [] where unreadable)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or "unknown", []
    model, flags = "unknown", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model == "unknown":
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return model, [f for f in SPEED_FLAGS if f in flags]


def environment_lines(runs: Sequence[RunResult]) -> list[str]:
    """Markdown bullet lines describing where the report was built and where the runs ran."""
    model, flags = cpu_facts()
    devices = Counter(f"{r.device or '?'} ({r.precision or '?'})" for r in runs)
    return [
        f"- Python {platform.python_version()}, torch {_version('torch')}, torchvision "
        f"{_version('torchvision')}, scipy {_version('scipy')}, on {platform.platform()}",
        f"- CPU: {model}; speed flags: {', '.join(flags) or 'none of ' + ', '.join(SPEED_FLAGS)}",
        "- Runs by device (precision): "
        + ", ".join(f"{k}: {v}" for k, v in sorted(devices.items())),
    ]
