"""The lent GPU machine's bundle (benchmarks/gpu_prepare.sh, benchmarks/gpu_bundle.py): prepared
here, it must hold every wheel the offline run needs for CPython 3.12, and Fashion-MNIST intact."""

from __future__ import annotations

import filecmp
import gzip
import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from benchmarks import gpu_bundle

REPO = Path(__file__).resolve().parents[1]
DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")
PIP_TARGET = [
    "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312",
    "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64",
    "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
]  # fmt: skip


# -- the real bundle: prepared from the registry, then checked -------------------------------------
@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    if not (DEBIAN_FMNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Debian's dataset-fashion-mnist is not installed ({DEBIAN_FMNIST})")
    bundle = tmp_path_factory.mktemp("bundle") / ".gpu"
    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_prepare.sh")],
        env={**os.environ, "PYTHON": sys.executable, "GPU_BUNDLE": str(bundle)},
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if proc.returncode == 75:
        pytest.skip(f"the package registry is unreachable: {proc.stderr.strip()[-500:]}")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return bundle, proc.stdout


@pytest.mark.slow
def test_prepare_carries_every_wheel_the_run_needs_and_fits_one_call(prepared) -> None:
    bundle, stdout = prepared
    result = gpu_bundle.check(bundle)
    assert result["problems"] == []
    assert result["total_bytes"] <= gpu_bundle.CARRY_LIMIT - gpu_bundle.CARRY_MARGIN
    assert f'carry:     ["{bundle}"]' in stdout and "bash benchmarks/gpu.sh" in stdout
    names = [gpu_bundle.Wheel.read(Path(w)).name for w in result["wheels"]]
    assert len(names) == len(set(names))  # one version of each
    wanted = {
        **gpu_bundle.pinned("core"),
        **(gpu_bundle.pinned("wandb") if result["wandb"] else {}),
    }
    assert sorted(names) == sorted(wanted)
    assert {"hydra-core", "omegaconf", "antlr4-python3-runtime", "hydra-joblib-launcher"} <= set(
        names
    )


@pytest.mark.slow
def test_pip_installs_the_pins_for_python_312_from_the_bundle_alone(prepared, tmp_path) -> None:
    """What the lent machine's pip does, with no index: every pin resolves to a carried wheel."""
    bundle, _ = prepared
    result = gpu_bundle.check(bundle)
    pins = [*gpu_bundle.CORE_PINS, *(gpu_bundle.WANDB_PINS if result["wandb"] else ())]
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--no-deps",
         "--find-links", str(bundle / "wheels"), *PIP_TARGET, "--target", str(tmp_path / "site"),
         *pins],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    would = next(line for line in proc.stdout.splitlines() if line.startswith("Would install"))
    for pin in pins:
        name, version = pin.split("==")
        assert f"{name}-{version}".lower().replace("_", "-") in would.lower().replace("_", "-")


@pytest.mark.slow
def test_prepare_packs_fashion_mnist_byte_for_byte(prepared) -> None:
    bundle, _ = prepared
    packed = sorted((bundle / "fashion-mnist").iterdir())
    assert [p.name for p in packed] == sorted(gpu_bundle.FMNIST_FILES)
    for path in packed:
        assert filecmp.cmp(path, DEBIAN_FMNIST / path.name, shallow=False)


# -- the checks catch what would break the offline install -----------------------------------------
MODULE_OF = {dist: module for module, dist in gpu_bundle.RUN_MODULES.items()}


def fake_wheel(folder: Path, pin: str, requires=(), tag: str = "py3-none-any") -> Path:
    """A minimal wheel of ``name==version`` with ``requires`` as Requires-Dist."""
    name, version = pin.split("==")
    dist = name.replace("-", "_")
    path = folder / f"{dist}-{version}-{tag}.whl"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{dist}-{version}.dist-info/METADATA", meta)
        module = MODULE_OF.get(name)
        if module:
            archive.writestr(f"{module.replace('.', '/')}/__init__.py", "")
    return path


@pytest.fixture
def fake_bundle(tmp_path: Path) -> Path:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for pin in gpu_bundle.CORE_PINS:
        fake_wheel(wheels, pin, requires=["PyYAML>=5.1", 'colorama; sys_platform == "win32"'])
    return wheels


def test_fake_core_bundle_passes(fake_bundle: Path) -> None:
    problems, with_wandb = gpu_bundle.check_wheels(fake_bundle)
    assert problems == [] and with_wandb is False


def test_a_dependency_neither_carried_nor_on_the_image_is_named(fake_bundle: Path) -> None:
    fake_wheel(fake_bundle, "hydra-joblib-launcher==1.2.0", requires=["left-pad>=1"])  # replaces it
    problems, _ = gpu_bundle.check_wheels(fake_bundle)
    assert any("left-pad>=1: neither carried nor on the image" in p for p in problems), problems


def test_a_missing_pin_two_versions_and_a_foreign_tag_are_named(fake_bundle: Path) -> None:
    next(fake_bundle.glob("omegaconf-*.whl")).unlink()
    fake_wheel(fake_bundle, "hydra-core==1.3.2")
    fake_wheel(fake_bundle, "antlr4-python3-runtime==4.9.3", tag="cp311-cp311-win_amd64")
    next(fake_bundle.glob("antlr4_python3_runtime-4.9.3-py3-none-any.whl")).unlink()
    problems = "\n".join(gpu_bundle.check_wheels(fake_bundle)[0])
    assert "omegaconf==2.3.1 is not in" in problems
    assert "two versions of hydra-core" in problems
    assert "does not install on CPython 3.12 x86-64 Linux" in problems


def test_a_dependency_the_carried_version_does_not_satisfy_is_named(fake_bundle: Path) -> None:
    next(fake_bundle.glob("hydra_core-*.whl")).unlink()
    fake_wheel(fake_bundle, "hydra-core==1.3.8", requires=["omegaconf>=2.4"])
    problems = gpu_bundle.check_wheels(fake_bundle)[0]
    assert any("hydra-core needs omegaconf>=2.4, carried omegaconf-2.3.1" in p for p in problems)


def write_idx(path: Path, magic: int, count: int, payload: int) -> None:
    with gzip.open(path, "wb") as handle:
        handle.write(struct.pack(">II", magic, count) + b"\0" * payload)


def test_data_check_catches_a_truncated_file_and_a_wrong_magic(tmp_path: Path) -> None:
    for name, (magic, count, size) in gpu_bundle.FMNIST_FILES.items():
        if "labels" in name:
            write_idx(tmp_path / name, magic, count, size - 8)
    images = tmp_path / "t10k-images-idx3-ubyte.gz"
    write_idx(images, 2049, 10_000, 10)  # a labels header on the images file
    whole = gzip.compress(b"\0" * 1000)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(whole[: len(whole) // 2])
    problems = "\n".join(gpu_bundle.check_data(tmp_path))
    assert "train-images-idx3-ubyte.gz: not a complete gzip file" in problems
    assert "t10k-images-idx3-ubyte.gz: IDX magic 2049" in problems
    assert "labels" not in problems  # the two intact files pass


def test_tree_size_counts_every_tracked_file(tmp_path: Path) -> None:
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    tracked = sum(
        (REPO / os.fsdecode(n)).lstat().st_size
        for n in listed
        if n and (REPO / os.fsdecode(n)).exists()
    )
    assert gpu_bundle.tree_bytes(REPO) >= tracked > 100_000


# -- the run's closing table (benchmarks/gpu_numbers.py) ------------------------------------------
def test_numbers_extrapolate_the_study_and_read_the_gpu_load(tmp_path: Path) -> None:
    from benchmarks import gpu_numbers

    sweep = tmp_path / "study"
    for num, (block, depth, epoch_s) in enumerate([("plain", 20, 4.0), ("basic", 56, 10.0)]):
        job = sweep / str(num)
        job.mkdir(parents=True)
        summary = {
            "status": "completed",
            "wall_time_s": 70.0,
            "model": {"block": block, "depth": depth},
            "speed": {"precision": "bf16", "channels_last": True, "compile": False},
        }
        (job / "summary.json").write_text(json.dumps(summary))
        rows = [{"epoch": e, "time/epoch_s": epoch_s, "throughput/img_s": 5000.0, "train/err": 9.5,
                 "test/err": 10.25} for e in (1, 2, 3)]  # fmt: skip
        steps = [json.dumps({"step": 10, "train/loss": 1.0})]  # a per-step row has no epoch time
        (job / "metrics.jsonl").write_text("\n".join(steps + [json.dumps(r) for r in rows]) + "\n")
    lines = gpu_numbers.study_lines(sweep, epochs=3, study_s=60.0)
    text = "\n".join(lines)
    assert "plain-20" in text and "basic-56" in text and "bf16/NHWC/eager" in text
    assert "epochs 3" in text and "5000 img/s" in text
    # the longest job trained 3 x 10 s; 30 epochs: 60 s + 30 s x (30 / 3 - 1) = 330 s
    assert "the longest job trained 30 s; 30 epochs would take about 330 s" in text
    load = tmp_path / "load.csv"
    load.write_text("timestamp, utilization.gpu [%]\nt, 80\nt, 100\nt, [N/A]\n")
    assert "mean 90%, max 100% (2 samples" in gpu_numbers.load_lines(load)[0]
    assert gpu_numbers.study_lines(tmp_path / "none", 3, 0.0)[-1] == "  no job ran"
