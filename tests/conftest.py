"""Shared test setup: W&B never goes online and never writes outside a temp dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

from resnet_exp.training.threads import wait_passively

# Before anything imports torch: the tests' idle OpenMP threads sleep, as every resnet_exp
# process's do (app.entry). Spinning, one 2-thread forward and backward of resnet152 took 10 s of
# CPU on the loaded 2-core CI machine, sleeping 0.5 s; the numbers are the same either way.
wait_passively()

# Property tests: the same examples on every run (a failure reproduces), no example database
# written into the tree, no per-example deadline (the machine is shared and its speed varies).
settings.register_profile("resnet_exp", derandomize=True, database=None, deadline=None)
settings.load_profile("resnet_exp")


@pytest.fixture(autouse=True)
def _offline_wandb(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path_factory.mktemp("wandb-home")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(home))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(Path(home) / "config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(Path(home) / "cache"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)


DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="session")
def fmnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding the real Fashion-MNIST, unpacked once per test session."""
    if not (DEBIAN_FMNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("real Fashion-MNIST needs Debian's dataset-fashion-mnist (.ci/run installs it)")
    from resnet_exp.data import DataModule

    root = tmp_path_factory.mktemp("data")
    DataModule(name="fashionmnist", root=str(root), batch_size=8, val_size=0).setup(
        device="cpu", seed=0
    )
    return root


@pytest.fixture
def one_thread():
    """Torch on one intra-op thread for the test (in-process training: repeatable, uncontended)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
