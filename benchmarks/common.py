"""Shared pieces: device choice, interleaved timing, data, models, tables and JSON results."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Where results go; tests point this elsewhere with the environment variable.
RESULTS = Path(
    os.environ.get("RESNET_EXP_BENCH_RESULTS") or Path(__file__).resolve().parent / "results"
)
# Real data for the benchmarks, unpacked once from Debian's package by resnet_exp's own data code.
BENCH_DATA = Path(tempfile.gettempdir()) / "resnet_exp-bench-data"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="CI-size run (seconds, not minutes)")
    p.add_argument("--device", default="auto", help="auto (cuda when present) | cpu | cuda")
    p.add_argument("--reps", type=int, default=None, help="interleaved repetitions per variant")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads on CPU (default 1: on a shared machine more threads than free "
        "cores make OpenMP barriers, and so every timing, erratic)",
    )
    return p


# torch's own intra-op thread count, read before any benchmark in this process changes it.
_torch_default_threads: int | None = None


def pick_device(name: str = "auto", threads: int | None = None, keep_default: bool = False):
    """The device to measure on (cuda when present). Also fixes the thread count: ``threads``,
    else torch's own default when ``keep_default``, else 1 on CPU."""
    import torch

    global _torch_default_threads
    if _torch_default_threads is None:
        _torch_default_threads = torch.get_num_threads()
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name
    )
    if threads:
        torch.set_num_threads(threads)
    elif keep_default:  # an earlier benchmark in this process may have pinned 1 thread
        torch.set_num_threads(_torch_default_threads)
    elif device.type == "cpu":
        torch.set_num_threads(1)
    return device


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def environment(device=None) -> dict[str, Any]:
    import torch

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
    }
    if device is not None:
        env["device"] = str(device)
        if device.type == "cuda":
            env["gpu"] = torch.cuda.get_device_name(device)
    return env


def interleaved(
    variants: dict[str, Callable[[], float]], reps: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Run every variant ``warmup`` times, then ``reps`` rounds of all variants in rotating order.

    Each callable does its own work and returns the seconds it measured. Rotating the order within
    a round keeps a slow phase of a shared machine from always landing on the same variant.
    """
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(variants[name]())
    return times


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def paired_speed(base: Sequence[float], other: Sequence[float]) -> float:
    """Median over rounds of ``base[i] / other[i]``: each ratio compares two runs made back to
    back, so a load change between rounds cancels out (steadier than a ratio of medians)."""
    return median([b / o for b, o in zip(base, other)])


def timed(fn: Callable[[], Any], device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def fashion_mnist(
    device,
    *,
    batch_size: int,
    train_subset: int,
    augment: bool = False,
    loader: str = "tensor",
    num_workers: int = 0,
    root: Path | None = None,
):
    """A set-up Fashion-MNIST DataModule (real data: ``root``, else ``$RESNET_EXP_DATA`` where it
    holds the files, else unpacked from Debian's copy into a temp dir), or None."""
    from resnet_exp.data.sources import DATASETS, debian_fmnist_dir

    if root is None:
        env = os.environ.get("RESNET_EXP_DATA")
        have_env = bool(env) and not DATASETS["fashionmnist"].missing_files(Path(env))
        if not have_env and not (debian_fmnist_dir() / "train-images-idx3-ubyte.gz").exists():
            return None
        root = Path(env) if have_env else BENCH_DATA
    from resnet_exp.data import DataModule

    dm = DataModule(
        name="fashionmnist",
        root=str(root),
        batch_size=batch_size,
        val_size=0,
        train_subset=train_subset,
        test_subset=256,
        augment=augment,
        loader=loader,
        num_workers=num_workers,
    )
    dm.setup(device=device, seed=0)
    return dm


def batches(device, *, batch_size: int, count: int, channels: int = 1, size: int = 28):
    """``count`` training batches on ``device``: real Fashion-MNIST when available, else synthetic.

    Returns (list of (x, y), source name).
    """
    import torch

    dm = None
    if (channels, size) == (1, 28):
        dm = fashion_mnist(device, batch_size=batch_size, train_subset=batch_size * count + 2)
    if dm is not None:
        out = [b for _, b in zip(range(count), dm.train_batches(1))]
        return out, "fashionmnist"
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(count):
        x = torch.randn(batch_size, channels, size, size, generator=g)
        y = torch.randint(0, 10, (batch_size,), generator=g)
        out.append((x.to(device), y.to(device)))
    return out, "synthetic"


MODELS = {
    "resnet20": ("cifar", 20),
    "resnet56": ("cifar", 56),
    "resnet18": ("imagenet", 18),
}


def build_model(name: str, in_channels: int = 1, num_classes: int = 10):
    from resnet_exp.models import ResNet
    from resnet_exp.models.blocks import BasicBlock

    family, depth = MODELS[name]
    return ResNet(
        BasicBlock, depth, family=family, in_channels=in_channels, num_classes=num_classes
    )


def format_table(rows: list[dict], columns: Sequence[str]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    body = [[cell(r.get(c, "")) for c in columns] for r in rows]
    widths = [
        max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(columns)
    ]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def command(module: str) -> str:
    """The command line that reproduces this run."""
    return " ".join(["python -m", module, *sys.argv[1:]])


def write_result(name: str, payload: dict[str, Any], out: Path | None = None) -> Path:
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, **payload}
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    return path


def result_header(name: str, quick: bool, environment_info: dict, load_before) -> dict[str, Any]:
    """Fields every benchmark's JSON starts with: how to rerun it, where, under what load."""
    return {
        "command": command(f"benchmarks.{name}"),
        "quick": quick,
        "environment": environment_info,
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }


def run_main(
    name: str,
    doc: str,
    run: Callable[[argparse.Namespace], dict],
    argv: Sequence[str] | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> dict:
    """Parse the shared flags (plus ``add_arguments``), run, write the JSON result."""
    p = parser(doc.splitlines()[0])
    if add_arguments is not None:
        add_arguments(p)
    args = p.parse_args(argv)
    result = run(args)
    print(f"wrote {write_result(name, result, args.out)}")
    return result
