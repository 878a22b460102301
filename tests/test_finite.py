"""NaN and inf are refused by every float key, before anything is written (issue 21, class 4)."""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path

import pytest
from cli import REPO, run_cli
from omegaconf import OmegaConf

from resnet_exp import config
from resnet_exp.hydra_glue.compose import compose
from resnet_exp.validation import InvalidConfig, validate

BAD = (math.nan, math.inf, -math.inf)


def _float_fields(schema: type) -> list[tuple[str, bool]]:
    """(field name, is a list) of each float or list-of-float field of a schema dataclass."""
    hints = typing.get_type_hints(schema)
    found = []
    for f in dataclasses.fields(schema):
        hint = hints[f.name]
        if hint is float or hint == float | None:
            found.append((f.name, False))
        elif typing.get_origin(hint) is list and typing.get_args(hint) == (float,):
            found.append((f.name, True))
    return found


def _group_options() -> list[tuple[str, str]]:
    """Every (group, option) of conf/ whose node is built from a schema with its own keys."""
    return [
        (group.name, option.stem)
        for group in sorted((REPO / "conf").iterdir())
        if group.is_dir() and group.name not in ("hydra", "experiment", "model")
        for option in sorted(group.glob("*.yaml"))
    ] + [("model", "resnet20")]


def _cases() -> list[tuple[list[str], str, bool]]:
    cases = [([], name, is_list) for name, is_list in _float_fields(config.Config)]
    for group, option in _group_options():
        node = compose([f"{group}={option}"])[group]
        schema = OmegaConf.get_type(node)
        if schema is None or not dataclasses.is_dataclass(schema):
            continue
        for name, is_list in _float_fields(schema):
            cases.append(([f"{group}={option}"], f"{group}.{name}", is_list))
    return cases


CASES = _cases()


def test_every_schema_with_a_float_key_is_covered() -> None:
    """A new schema (or group option) with float keys is tried without a change here."""
    covered = {key for _, key, _ in CASES}
    schemas = [
        obj
        for obj in vars(config).values()
        if isinstance(obj, type) and obj.__name__.endswith("Config") and _float_fields(obj)
    ]
    assert len(schemas) >= 6  # SGD, Adam, 3 schedules, data, logger
    for schema in schemas:
        assert any(key.endswith(f".{_float_fields(schema)[0][0]}") for key in covered), schema
    assert {"optimizer.betas", "data.mean", "data.std", "scheduler.milestones"} <= covered


@pytest.mark.parametrize(("overrides", "key", "is_list"), CASES, ids=[k for _, k, _ in CASES])
def test_every_float_key_refuses_nan_and_inf(overrides: list[str], key: str, is_list: bool) -> None:
    cfg = compose(overrides)
    for bad in BAD:
        value = [bad] + list(OmegaConf.select(cfg, key))[1:] if is_list else bad
        OmegaConf.update(cfg, key, value, force_add=False)
        with pytest.raises(InvalidConfig) as info:
            validate(cfg)
        message = str(info.value)
        assert message.startswith(f"{key}=") and "not a finite number" in message, message
        assert "\n" not in message


@pytest.mark.slow
def test_non_finite_values_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    """Members the issue does not name: a warm-up factor, a milestone of a sweep's job."""
    run_dir = tmp_path / "run"
    done = run_cli("scheduler.warmup_factor=inf", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "scheduler.warmup_factor=inf: inf is not a finite number" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not run_dir.exists()

    sweep_dir = tmp_path / "sweep"
    done = run_cli("--multirun", "optimizer=adam", "optimizer.betas=[0.9,0.99],[0.9,-inf]",
                   "logger=none", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "optimizer.betas=[0.9, -inf]: -inf is not a finite number" in done.stderr
    assert "Traceback" not in done.stderr
    assert not sweep_dir.exists()
