"""What a user gets from ``pip install .``: the whole config tree in the wheel, a working command
from any directory, and no warnings from a base install (no extras)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from cli import REPO, run_cli

pytestmark = pytest.mark.slow

# A base install has no `scale` extra: hide submitit and its Hydra launcher from the interpreter.
BLOCK_SCALE_EXTRA = textwrap.dedent(
    """
    import sys
    from importlib.abc import MetaPathFinder

    class _NoScaleExtra(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "submitit" or name.startswith(
                "hydra_plugins.hydra_submitit_launcher"
            ):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, _NoScaleExtra())
    """
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a clean copy of the tracked sources (setuptools' build/ folder would otherwise
    keep modules that no longer exist, and the test would pass on stale files)."""
    out, src = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("src")
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.split("\0")
    for name in filter(None, tracked):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(src)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    (path,) = out.glob("resnet_exp-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed (not editable) into a folder of its own, plus a base-install blocker."""
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
         "--target", str(site), str(wheel)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    (site / "sitecustomize.py").write_text(BLOCK_SCALE_EXTRA)
    return site


def test_the_wheel_holds_every_config_file_and_module(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"resnet_exp/conf/{p.relative_to(REPO / 'conf')}" for p in
               (REPO / "conf").rglob("*.yaml")}  # fmt: skip
    tracked = subprocess.run(
        ["git", "ls-files", "resnet_exp"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.split()
    modules = {name for name in tracked if name.endswith(".py")}
    assert len(configs) > 40
    assert configs <= names, sorted(configs - names)
    assert modules <= names, sorted(modules - names)
    stale = {n for n in names if n.startswith("resnet_exp/") and n.endswith(".py")} - modules
    assert not stale, sorted(stale)
    assert "hydra_plugins/resnet_exp_launcher/_slurm.py" in names


def _run_installed(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    # The wheel's folder first on the path: it wins over the repo's editable install.
    return run_cli(*args, cwd=cwd, env={"PYTHONPATH": str(site)})


def test_a_non_editable_install_runs_from_another_folder_without_warnings(
    installed: Path, tmp_path: Path
) -> None:
    job = _run_installed(installed, "--cfg", "job", cwd=tmp_path)
    assert job.returncode == 0, job.stderr
    assert "model:" in job.stdout and "depth: 20" in job.stdout
    assert job.stderr == ""
    where = subprocess.run(
        [sys.executable, "-c", "import resnet_exp.config_dir as c; print(c.config_dir())"],
        cwd=tmp_path, env={"PYTHONPATH": str(installed)}, capture_output=True, text=True,
    )  # fmt: skip
    assert where.stdout.strip() == str(installed / "resnet_exp" / "conf")

    shown = _run_installed(installed, "--help", cwd=tmp_path)
    assert shown.returncode == 0 and shown.stderr == ""
    assert shown.stdout.startswith("resnet_exp: see why residual networks work.")
    assert "model/block: basic, bottleneck, plain, plain_bottleneck, preact" in shown.stdout
    assert "schema" not in shown.stdout.split("== Config (")[0]  # internal groups stay hidden
    assert "powered by Hydra" not in shown.stdout


def test_a_tiny_training_run_of_a_base_install_prints_no_warning(
    installed: Path, tmp_path: Path, fmnist_root: Path
) -> None:
    done = _run_installed(
        installed,
        f"data.root={fmnist_root}", "data.train_subset=64", "data.val_size=16",
        "data.batch_size=16", "data.test_subset=32", "trainer.epochs=1", "trainer.progress=false",
        "hydra.run.dir=run",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "warn" not in done.stderr.lower(), done.stderr
    assert "Traceback" not in done.stderr
    assert (tmp_path / "run" / "resnet_exp.log").is_file()
    assert (tmp_path / "run" / "summary.json").is_file()


def test_slurm_without_the_scale_extra_is_one_clear_error(installed: Path, tmp_path: Path) -> None:
    done = _run_installed(installed, "--multirun", "hydra/launcher=slurm", "seed=1", cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert 'pip install "resnet_exp[scale]"' in done.stderr or ".[scale]" in done.stderr
    assert not (tmp_path / "outputs").exists()
