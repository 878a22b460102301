"""The config tree as users meet it: composition, Hydra's flags, and the errors for bad choices."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from cli import run_cli

from resnet_exp.hydra_glue.compose import compose


def test_default_config_is_resnet20_on_fashionmnist_with_paper_recipe() -> None:
    cfg = compose()
    assert cfg.model.depth == 20 and cfg.model.family == "cifar" and cfg.model.shortcut == "A"
    assert cfg.data.name == "fashionmnist"
    assert cfg.model.in_channels == cfg.data.in_channels == 1
    assert cfg.optimizer.lr == 0.1 and cfg.optimizer.momentum == 0.9
    assert cfg.optimizer.weight_decay == 1e-4
    assert list(cfg.scheduler.milestones) == [0.5, 0.75]


def test_model_channels_and_classes_follow_the_data_config() -> None:
    cfg = compose(["model=resnet50", "data.in_channels=3", "data.num_classes=1000"])
    assert (cfg.model.in_channels, cfg.model.num_classes) == (3, 1000)
    assert compose(["data=cifar100"]).model.num_classes == 100


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.epoch=3", "Could not override 'trainer.epoch'"),
        ("data.batch_size=abc", "could not be converted to Integer"),
        ("optimizer.lr=fast", "could not be converted to Float"),
        ("model.depth=deep", "could not be converted to Integer"),
    ],
)
def test_wrong_types_and_unknown_keys_fail_at_composition(override: str, message: str) -> None:
    with pytest.raises(Exception) as info:
        compose([override])
    assert message in f"{info.value}\n{info.value.__cause__}"


def test_cfg_job_prints_composed_config(tmp_path: Path) -> None:
    result = run_cli("--cfg", "job", "model=resnet56", "model/block=plain", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    cfg = yaml.safe_load(result.stdout)
    assert cfg["model"]["depth"] == 56
    assert cfg["model"]["block"]["path"] == "resnet_exp.models.PlainBlock"
    assert not (tmp_path / "outputs").exists()  # printing a config writes nothing


def test_info_defaults_tree_lists_the_groups(tmp_path: Path) -> None:
    result = run_cli("--info", "defaults-tree", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for line in ("model: resnet20", "block: basic", "depth: '20'", "data: fashionmnist"):
        assert line.replace("'", "") in result.stdout.replace("'", "")


def test_multirun_cfg_job_prints_each_job(tmp_path: Path) -> None:
    result = run_cli(
        "--multirun", "model/depth=20,32", "model/block=plain,basic", "--cfg", "job", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    docs = [d for d in result.stdout.split("# job ") if d.strip()]
    assert len(docs) == 4
    jobs = [yaml.safe_load(d.split("\n", 1)[1]) for d in docs]
    assert sorted(
        (j["model"]["depth"], j["model"]["block"]["path"].rsplit(".", 1)[1]) for j in jobs
    ) == [
        (20, "BasicBlock"),
        (20, "PlainBlock"),
        (32, "BasicBlock"),
        (32, "PlainBlock"),
    ]
    assert not (tmp_path / "outputs").exists()


def test_console_script_shell_completion(tmp_path: Path) -> None:
    exe = shutil.which("resnet-exp")
    if exe is None:
        pytest.skip("console script not installed in this environment")
    result = subprocess.run(
        [exe, "-sc", "install=bash"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "complete -o nospace -o default -F hydra_bash_completion" in result.stdout
    assert "resnet-exp" in result.stdout


@pytest.mark.parametrize(
    ("override", "group", "valid"),
    [
        ("model=resnet21", "model", "resnet56"),
        ("model/block=dense", "model/block", "plain_bottleneck"),
        ("model/depth=57", "model/depth", "164"),
        ("data=imagenet", "data", "cifar100"),
        ("optimizer=lion", "optimizer", "adamw"),
        ("scheduler=linear", "scheduler", "cosine"),
        ("logger=tensorboard", "logger", "wandb"),
    ],
)
def test_unknown_group_option_lists_available_options(
    tmp_path: Path, override: str, group: str, valid: str
) -> None:
    result = run_cli(override, cwd=tmp_path)
    assert result.returncode != 0
    assert f"Could not find '{group}/{override.split('=')[1]}'" in result.stderr
    assert f"Available options in '{group}'" in result.stderr
    assert valid in result.stderr
    assert "Traceback" not in result.stderr


def test_impossible_depth_fails_before_training_with_one_paragraph(tmp_path: Path) -> None:
    result = run_cli("model/block=bottleneck", "model/depth=34", "logger=none", cwd=tmp_path)
    assert result.returncode == 2
    assert "model.depth=34 does not fit block 'bottleneck'" in result.stderr
    assert "50, 101, 152" in result.stderr
    assert "Traceback" not in result.stderr
