"""The Hydra glue (resnet_exp/hydra_glue): the only place that knows Hydra, and the Hydra
behaviour it relies on, pinned so an upgrade that changes it fails here by name."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from resnet_exp.errors import UserError
from resnet_exp.hydra_glue import internals
from resnet_exp.hydra_glue.compose import compose, instantiate_node, valid_keys
from resnet_exp.hydra_glue.folders import rank_overrides
from tests.cli import REPO, run_cli

# -- the layering rule: models, data, training and tracking never import Hydra --

LAYER_CHECK = """
import importlib, json, pkgutil, sys
import resnet_exp.data, resnet_exp.models, resnet_exp.tracking, resnet_exp.training
names = []
for package in (resnet_exp.models, resnet_exp.data, resnet_exp.training, resnet_exp.tracking):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
        names.append(info.name)
print(json.dumps({"imported": names, "loaded": sorted(sys.modules)}))
"""


def test_models_data_training_and_tracking_import_no_hydra() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LAYER_CHECK], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.splitlines()[-1])
    assert "resnet_exp.training.loop" in report["imported"]  # the walk really imported modules
    leaked = [
        name
        for name in report["loaded"]
        if name.split(".")[0] == "hydra"
        or name.startswith(("resnet_exp.hydra_glue", "resnet_exp.app"))
    ]
    assert leaked == []


# -- Hydra internals we rely on (resnet_exp/hydra_glue/internals.py) --


def _resolve(dotted: str) -> object:
    """The object a PRIVATE_API name names (``a.b.C.instance().x``: calls ``instance()``)."""
    parts = dotted.replace("()", "").split(".")
    for cut in range(len(parts), 0, -1):  # the longest importable module prefix
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for i, name in enumerate(parts[cut:], start=cut):
            found = getattr(found, name)
            if dotted.startswith(".".join(parts[: i + 1]) + "()"):
                found = found()  # type: ignore[operator]
        return found
    raise ImportError(dotted)


@pytest.mark.parametrize("name", sorted(internals.PRIVATE_API))
def test_every_private_name_we_use_is_still_there(name: str) -> None:
    """Each Hydra/submitit private name of internals.py resolves in the installed versions."""
    if name.startswith("submitit"):
        pytest.importorskip("submitit")  # the scale extra
    try:
        _resolve(name)
    except (ImportError, AttributeError) as error:
        pytest.fail(
            f"{name} (used by internals.{internals.PRIVATE_API[name]}, checked with "
            f"{internals.CHECKED_WITH}) is gone from the installed version: {error}"
        )


def test_only_internals_names_private_hydra_or_submitit_api() -> None:
    """No other product module imports hydra._internal or writes a private attribute of theirs."""
    product = [*(REPO / "resnet_exp").rglob("*.py"), *(REPO / "hydra_plugins").rglob("*.py")]
    offenders = [
        str(path.relative_to(REPO))
        for path in product
        if path.name != "internals.py"
        and any(m in path.read_text() for m in ("hydra._internal", "_return_value", ".cfg = "))
    ]
    assert offenders == []


def test_hydra_internal_numeric_group_option_selects_a_config_group_option() -> None:
    """defaults_list.Overrides.__init__ patch: `model/depth=56` picks conf/model/depth/56.yaml."""
    from hydra._internal import defaults_list

    cfg = compose(["model/depth=56"])
    assert cfg.model.depth == 56
    assert getattr(defaults_list.Overrides.__init__, internals._PATCHED, False)


def test_hydra_internal_split_sweep_expands_like_the_basic_sweeper() -> None:
    """BasicSweeper.split_arguments: the cartesian product, last key varying fastest."""
    jobs = internals.split_sweep(["a=1,2", "b=x,y", "c=3"])
    assert jobs == [
        ["a=1", "b=x", "c=3"],
        ["a=1", "b=y", "c=3"],
        ["a=2", "b=x", "c=3"],
        ["a=2", "b=y", "c=3"],
    ]
    assert internals.split_sweep(["seed=range(0,3)"]) == [["seed=0"], ["seed=1"], ["seed=2"]]


def test_hydra_internal_pin_now_survives_hydra_reregistering_now(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """hydra.core.utils.datetime: setup_globals re-registers ${now:} reading that name."""
    import hydra.core.utils as hydra_utils

    monkeypatch.setattr(hydra_utils, "datetime", hydra_utils.datetime)  # restored afterwards
    internals.pin_now(datetime(2001, 2, 3, 4, 5, 6))
    hydra_utils.setup_globals()  # what every launcher calls before a job
    cfg = OmegaConf.create({"dir": "${now:%Y-%m-%d_%H-%M-%S}"})
    assert cfg.dir == "2001-02-03_04-05-06"


def test_ranks_above_zero_write_no_hydra_files_unless_told() -> None:
    argv = ["seed=1", "hydra/job_logging=none"]
    assert rank_overrides(argv, 0) == argv
    assert rank_overrides(argv, 1) == [*argv, "hydra.output_subdir=null"]


# -- instantiation errors are ours --


def test_a_key_the_target_does_not_take_names_it_and_the_valid_keys() -> None:
    node = compose(["optimizer=adam", "+optimizer.momentum=0.9"]).optimizer
    with pytest.raises(UserError) as info:
        instantiate_node(node, "optimizer")
    message = str(info.value)
    assert "optimizer.momentum" in message and "torch.optim.Adam" in message
    assert "betas" in message and "weight_decay" in message  # the keys Adam does take


def test_a_partial_node_that_fails_when_called_is_a_user_error() -> None:
    import torch

    node = OmegaConf.create({"_target_": "torch.optim.SGD", "_partial_": True, "lr": -1.0})
    make = instantiate_node(node, "optimizer")
    with pytest.raises(UserError, match=r"cannot build optimizer \(torch.optim.SGD\).*lr"):
        make([torch.nn.Parameter(torch.zeros(1))])


def test_valid_keys_reads_the_signature() -> None:
    def target(a: int, b: int = 1, *, c: int = 2) -> None: ...

    def anything(**kwargs: int) -> None: ...

    assert valid_keys(target) == ["a", "b", "c"]
    assert valid_keys(anything) is None  # takes any key: nothing to check


@pytest.mark.parametrize(
    ("overrides", "bad_key", "a_valid_key"),
    [
        (["logger=none", "+logger.foo=1"], "logger.foo", "valid keys: mode"),
        (["optimizer=adam", "+optimizer.momentum=0.9"], "optimizer.momentum", "betas"),
    ],
)
def test_a_bad_key_for_the_chosen_node_is_one_clear_paragraph_with_exit_2(
    tmp_path: Path, fmnist_root: Path, overrides: list[str], bad_key: str, a_valid_key: str
) -> None:
    result = run_cli(
        *overrides,
        f"data.root={fmnist_root}",
        "data.train_subset=64",
        "data.val_size=16",
        "model.depth=8",
        "trainer.epochs=1",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "Error in call to target" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and bad_key in errors[0] and a_valid_key in errors[0], result.stderr
    assert not (tmp_path / "run").exists()  # refused before Hydra made the run folder
