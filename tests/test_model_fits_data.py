"""Model keys that must agree with the data are checked before training (issue 21, class 5)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli import run_cli

from resnet_exp.hydra_glue.compose import compose
from resnet_exp.validation import InvalidConfig, validate

MISFITS = [
    (["model.num_classes=5"], "model.num_classes=5 is too small for fashionmnist", "at least 10"),
    (["data=cifar100", "model.num_classes=99"], "model.num_classes=99", "at least 100"),
    (["model.in_channels=3"], "model.in_channels=3 does not fit", "data.in_channels=1"),
    (["data=cifar10", "model=resnet18", "model.in_channels=1"], "model.in_channels=1", "=3"),
    (["data.in_channels=3", "model.in_channels=1"], "model.in_channels=1", "data.in_channels=3"),
]


@pytest.mark.parametrize(("overrides", "named", "advice"), MISFITS)
def test_a_model_that_does_not_fit_the_data_is_one_paragraph(
    overrides: list[str], named: str, advice: str
) -> None:
    with pytest.raises(InvalidConfig) as info:
        validate(compose(overrides))
    assert named in str(info.value) and advice in str(info.value), info.value
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "overrides",
    [["data.in_channels=3"], ["model.num_classes=12"], ["data=cifar100", "model=resnet18"]],
)
def test_a_model_that_fits_passes(overrides: list[str]) -> None:
    validate(compose(overrides))


@pytest.mark.slow
def test_a_misfit_model_trains_nothing(tmp_path: Path) -> None:
    """Members the issue does not name: input channels; the class count of one job of a sweep."""
    run_dir = tmp_path / "run"
    done = run_cli("model.in_channels=3", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "model.in_channels=3 does not fit the data" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not run_dir.exists()

    sweep_dir = tmp_path / "sweep"
    done = run_cli("--multirun", "data=mnist,cifar100", "model.num_classes=10", "logger=none",
                   f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "model.num_classes=10 is too small for cifar100" in done.stderr
    assert "No job of the sweep was started" in done.stderr
    assert not sweep_dir.exists()
