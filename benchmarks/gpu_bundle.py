"""What a lent GPU machine needs carried to it, and the checks that the carried folder is complete.

The lent machine (an NVIDIA H200, Python 3.12, torch/torchvision preinstalled) has no network: every
package the run needs that its image lacks travels as a wheel, and Fashion-MNIST travels as the four
gzipped IDX files. ``benchmarks/gpu_prepare.sh`` fetches them into ``.gpu/`` (git-ignored) with the
pins below; ``benchmarks/gpu.sh`` installs and uses them there. This module is the one place that
says what goes, and checks it without that machine:

    python -m benchmarks.gpu_bundle pins core|wandb     # the pinned requirements, one a line
    python -m benchmarks.gpu_bundle check [--dir .gpu]  # closure, tags, data, size; exit 1 if bad

The closure check reads every carried wheel's ``Requires-Dist`` (markers evaluated for CPython 3.12
on x86-64 Linux) and requires each to be carried, at a version the specifier accepts, or
preinstalled on the image (``IMAGE_PACKAGES``, read off such a machine on 2026-11-17; versions of
most are not known here, which is why ``gpu.sh`` imports everything first, before any step).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import struct
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    from pip._vendor import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
BUNDLE = Path(".gpu")  # relative to the repo root: the one path `carry` names
WHEELS, DATA = "wheels", "fashion-mnist"
#: What one device call may carry: working tree (tracked + untracked-not-ignored) plus `carry`.
CARRY_LIMIT = 64 * 1024 * 1024
#: Kept free under the limit for what the tool counts beyond file bytes (names, folders).
CARRY_MARGIN = 1024 * 1024

# The lent image: Python 3.12 on x86-64 Linux (glibc 2.39: Ubuntu 24.04's Python 3.12.3).
TARGET_PYTHON = (3, 12)
TARGET_PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in range(39, 4, -1)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
]
TARGET_MARKERS = {
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "extra": "",
}

# Hydra and the joblib launcher (pure Python). antlr4's 4.9.3 is an sdist on PyPI: gpu_prepare.sh
# builds its (pure-Python) wheel here. PyYAML, packaging and joblib are on the image.
CORE_PINS = (
    "hydra-core==1.3.8",
    "omegaconf==2.3.1",
    "antlr4-python3-runtime==4.9.3",
    "hydra-joblib-launcher==1.2.0",
)
SDIST_ONLY = frozenset({"antlr4-python3-runtime"})
# W&B and what of its closure the image lacks (resolved by pip for Python 3.12, 2026-11-30).
WANDB_PINS = (
    "wandb==0.31.0",
    "cwevals==0.0.1b1",
    "opentelemetry-api==1.45.2",
    "opentelemetry-sdk==1.45.2",
    "opentelemetry-proto==1.45.2",
    "opentelemetry-exporter-otlp-proto-http==1.45.2",
    "opentelemetry-exporter-otlp-proto-common==1.45.2",
    "opentelemetry-exporter-otlp-common==0.66b2",
    "opentelemetry-exporter-http-transport==0.66b2",
    "opentelemetry-semantic-conventions==0.66b2",
    "googleapis-common-protos==1.76.0",
    "pydantic==2.14.4",
    "pydantic-core==2.50.5",
    "annotated-types==0.8.0",
    "typing-inspection==0.4.5",
    "platformdirs==4.14.9",
    "distro==1.9.0",
    "sniffio==1.3.1",
)

# `python3 -m pip list` names on the lent image ('cuda', as KINDS.md lists it, 2026-11-17).
_IMAGE_PIP_LIST = """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch
build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage
cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn
einops equinox etils execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec
gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna imageio
iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib
kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown
markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict
multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13
nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13
nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir
onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix
orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker
prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing
pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout
pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors
scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers
setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch
torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton
typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray
xxhash yarl zipp
"""
IMAGE_PACKAGES = frozenset(canonicalize_name(n) for n in _IMAGE_PIP_LIST.split())
#: The few image versions that were read there (KINDS.md's pip list, 2026-11).
IMAGE_VERSIONS = {"torch": "2.11.0", "torchvision": "0.26.0", "numpy": "2.5.2", "triton": "3.6.0"}

#: Modules gpu.sh imports first on the machine, with the distribution that provides each.
RUN_MODULES = {
    "hydra": "hydra-core",
    "omegaconf": "omegaconf",
    "antlr4": "antlr4-python3-runtime",
    "hydra_plugins.hydra_joblib_launcher": "hydra-joblib-launcher",
    "joblib": "joblib",
    "yaml": "pyyaml",
    "torch": "torch",
    "torchvision": "torchvision",
    "numpy": "numpy",
    "matplotlib": "matplotlib",
    "tqdm": "tqdm",
}

# Fashion-MNIST's files: (IDX magic, item count, decompressed bytes).
FMNIST_FILES = {
    "train-images-idx3-ubyte.gz": (2051, 60_000, 16 + 60_000 * 28 * 28),
    "train-labels-idx1-ubyte.gz": (2049, 60_000, 8 + 60_000),
    "t10k-images-idx3-ubyte.gz": (2051, 10_000, 16 + 10_000 * 28 * 28),
    "t10k-labels-idx1-ubyte.gz": (2049, 10_000, 8 + 10_000),
}


@dataclass(frozen=True)
class Wheel:
    path: Path
    name: str  # canonical
    version: Version
    tags: frozenset[Tag]

    @classmethod
    def read(cls, path: Path) -> Wheel:
        name, version, _build, tags = parse_wheel_filename(path.name)
        return cls(path, canonicalize_name(name), version, frozenset(tags))

    def metadata(self) -> str:
        with zipfile.ZipFile(self.path) as archive:
            meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            return archive.read(meta).decode("utf-8", "replace")

    def requirements(self) -> list[Requirement]:
        """Its Requires-Dist lines that apply on the target (no extras)."""
        found = []
        for line in self.metadata().splitlines():
            if not line.startswith("Requires-Dist:"):
                continue
            req = Requirement(line.split(":", 1)[1].strip())
            if req.marker is None or Marker(str(req.marker)).evaluate(TARGET_MARKERS):
                found.append(req)
        return found

    def files(self) -> set[str]:
        with zipfile.ZipFile(self.path) as archive:
            return set(archive.namelist())


def pins(group: str) -> tuple[str, ...]:
    return {"core": CORE_PINS, "wandb": WANDB_PINS}[group]


def pinned(group: str) -> dict[str, Version]:
    out = {}
    for pin in pins(group):
        req = Requirement(pin)
        (spec,) = req.specifier
        out[canonicalize_name(req.name)] = Version(spec.version)
    return out


def target_tags() -> set[Tag]:
    return set(cpython_tags(TARGET_PYTHON, platforms=TARGET_PLATFORMS)) | set(
        compatible_tags(TARGET_PYTHON, "cp312", platforms=TARGET_PLATFORMS)
    )


def wheels_in(folder: Path) -> list[Wheel]:
    return sorted((Wheel.read(p) for p in folder.glob("*.whl")), key=lambda w: w.name)


def check_wheels(folder: Path) -> tuple[list[str], bool]:
    """Problems with the carried wheels (empty: complete), and whether W&B is carried."""
    problems: list[str] = []
    wheels = wheels_in(folder)
    by_name: dict[str, Wheel] = {}
    for wheel in wheels:
        if wheel.name in by_name:
            problems.append(
                f"two versions of {wheel.name}: {by_name[wheel.name].path.name} and "
                f"{wheel.path.name} (pip install stops on that)"
            )
        by_name[wheel.name] = wheel
    core, wandb = pinned("core"), pinned("wandb")
    with_wandb = "wandb" in by_name
    wanted = {**core, **(wandb if with_wandb else {})}
    for name, version in wanted.items():
        have = by_name.get(name)
        if have is None:
            problems.append(f"{name}=={version} is not in {folder}")
        elif have.version != version:
            problems.append(f"{have.path.name}: pinned {name}=={version}")
    for name in sorted(set(by_name) - set(wanted)):
        problems.append(f"{by_name[name].path.name} is carried but not pinned")
    supported = target_tags()
    for wheel in wheels:
        if not wheel.tags & supported:
            problems.append(f"{wheel.path.name} does not install on CPython 3.12 x86-64 Linux")
    for wheel in wheels:  # the closure: every dependency carried or on the image
        for req in wheel.requirements():
            dep = canonicalize_name(req.name)
            if dep in by_name:
                if not req.specifier.contains(by_name[dep].version, prereleases=True):
                    problems.append(f"{wheel.name} needs {req}, carried {by_name[dep].path.name}")
            elif dep in IMAGE_VERSIONS:
                if not req.specifier.contains(IMAGE_VERSIONS[dep], prereleases=True):
                    problems.append(
                        f"{wheel.name} needs {req}; the image has {IMAGE_VERSIONS[dep]}"
                    )
            elif dep not in IMAGE_PACKAGES:
                problems.append(f"{wheel.name} needs {req}: neither carried nor on the image")
    problems += check_project_needs(by_name, with_wandb)
    problems += check_run_modules(by_name)
    return problems, with_wandb


def project_dependencies() -> list[Requirement]:
    with open(REPO / "pyproject.toml", "rb") as handle:
        deps = tomllib.load(handle)["project"]["dependencies"]
    return [Requirement(d) for d in deps]


def check_project_needs(by_name: dict[str, Wheel], with_wandb: bool) -> list[str]:
    """Each base dependency of resnet_exp (pyproject.toml) is carried or on the image, at a version
    its range accepts where the version is known. W&B may stay behind (the run uses logger=none)."""
    problems = []
    for req in project_dependencies():
        name = canonicalize_name(req.name)
        if name == "wandb" and not with_wandb:
            continue
        if name in by_name:
            version = by_name[name].version
        elif name in IMAGE_PACKAGES:
            version = IMAGE_VERSIONS.get(name)
            if version is None:
                continue
        else:
            problems.append(f"resnet_exp needs {req}: neither carried nor on the image")
            continue
        if not req.specifier.contains(version, prereleases=True):
            problems.append(f"resnet_exp needs {req}, the lent machine would have {version}")
    return problems


def check_run_modules(by_name: dict[str, Wheel]) -> list[str]:
    """Each module gpu.sh imports is in a carried wheel, or its distribution is on the image."""
    problems = []
    for module, dist in RUN_MODULES.items():
        dist = canonicalize_name(dist)
        if dist in by_name:
            base = module.replace(".", "/")
            files = by_name[dist].files()
            if f"{base}/__init__.py" not in files and f"{base}.py" not in files:
                problems.append(f"{by_name[dist].path.name} holds no module {module}")
        elif dist not in IMAGE_PACKAGES:
            problems.append(f"import {module}: {dist} is neither carried nor on the image")
    return problems


def check_data(folder: Path) -> list[str]:
    """The four Fashion-MNIST files: gzip intact, IDX magic, item count and size as published."""
    problems = []
    for name, (magic, count, size) in FMNIST_FILES.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{path} is missing")
            continue
        try:
            with gzip.open(path, "rb") as handle:
                head = handle.read(8)
                total = len(head)
                while chunk := handle.read(1 << 20):
                    total += len(chunk)
        except (OSError, EOFError) as error:
            problems.append(f"{path}: not a complete gzip file ({error})")
            continue
        got_magic, got_count = struct.unpack(">II", head) if len(head) == 8 else (0, 0)
        if (got_magic, got_count, total) != (magic, count, size):
            problems.append(
                f"{path}: IDX magic {got_magic}, {got_count} items, {total} bytes; "
                f"expected {magic}, {count}, {size}"
            )
    return problems


def tree_bytes(repo: Path = REPO) -> int:
    """Bytes of the working tree a device call sends: tracked and untracked-not-ignored files."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo, capture_output=True, check=True,
    ).stdout  # fmt: skip
    total = 0
    for name in filter(None, listed.split(b"\0")):
        path = repo / os.fsdecode(name)
        if path.is_symlink() or path.is_file():
            total += path.lstat().st_size
    return total


def folder_bytes(folder: Path) -> int:
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file())


def check(bundle: Path, repo: Path = REPO) -> dict:
    """Everything about a prepared bundle: problems (empty: ready), sizes, W&B carried or not."""
    wheel_problems, with_wandb = check_wheels(bundle / WHEELS)
    problems = wheel_problems + check_data(bundle / DATA)
    tree, carried = tree_bytes(repo), folder_bytes(bundle)
    if tree + carried > CARRY_LIMIT - CARRY_MARGIN:
        problems.append(
            f"working tree {tree / 2**20:.1f} MiB + {bundle} {carried / 2**20:.1f} MiB exceeds "
            f"the {CARRY_LIMIT / 2**20:.0f} MiB a call carries (less {CARRY_MARGIN / 2**20:.0f} "
            "MiB margin)"
        )
    return {
        "problems": problems,
        "wandb": with_wandb,
        "tree_bytes": tree,
        "bundle_bytes": carried,
        "wheels_bytes": folder_bytes(bundle / WHEELS),
        "data_bytes": folder_bytes(bundle / DATA),
        "total_bytes": tree + carried,
        "limit_bytes": CARRY_LIMIT,
        "wheels": [w.path.name for w in wheels_in(bundle / WHEELS)],
    }


def prune(bundle: Path, with_wandb: bool) -> list[str]:
    """Delete every wheel that is not pinned (W&B's too, unless ``with_wandb``); returns names."""
    keep = {**pinned("core"), **(pinned("wandb") if with_wandb else {})}
    removed = []
    for path in sorted((bundle / WHEELS).iterdir()):
        if path.suffix != ".whl" or keep.get(Wheel.read(path).name) != Wheel.read(path).version:
            path.unlink()
            removed.append(path.name)
    return removed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    pins_cmd = sub.add_parser("pins", help="the pinned requirements of a group, one a line")
    pins_cmd.add_argument("group", choices=["core", "wandb"])
    sub.add_parser("sdist-only", help="pinned names that PyPI has as sdists only")
    prune_cmd = sub.add_parser("prune", help="delete wheels that are not pinned")
    prune_cmd.add_argument("--dir", type=Path, default=REPO / BUNDLE)
    prune_cmd.add_argument("--without-wandb", action="store_true", help="delete W&B's too")
    check_cmd = sub.add_parser("check", help="check a prepared bundle")
    check_cmd.add_argument("--dir", type=Path, default=REPO / BUNDLE)
    check_cmd.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    if args.command == "pins":
        print("\n".join(pins(args.group)))
        return 0
    if args.command == "sdist-only":
        print("\n".join(sorted(SDIST_ONLY)))
        return 0
    if args.command == "prune":
        for name in prune(args.dir, with_wandb=not args.without_wandb):
            print(f"removed {name} (not pinned)")
        return 0
    result = check(args.dir)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        mib = {k: v / 2**20 for k, v in result.items() if k.endswith("_bytes")}
        print(
            f"carry: tree {mib['tree_bytes']:.2f} MiB + {args.dir.name} {mib['bundle_bytes']:.2f} "
            f"MiB (wheels {mib['wheels_bytes']:.2f}, data {mib['data_bytes']:.2f}) = "
            f"{mib['total_bytes']:.2f} of {mib['limit_bytes']:.0f} MiB; W&B carried: "
            f"{result['wandb']}"
        )
        for problem in result["problems"]:
            print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
