"""The one validation layer: every rule's error comes from it, before torch is imported."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cli import REPO, run_cli

from resnet_exp import config
from resnet_exp.data.facts import DATASETS
from resnet_exp.hydra_glue.compose import compose
from resnet_exp.validation import InvalidConfig, validate

# (overrides, text the one paragraph must contain: the key and bad value, then what is valid)
BAD_VALUES = [
    (["trainer.epochs=0"], "trainer.epochs=0", ">= 1"),
    (["trainer.device=tpu"], "trainer.device='tpu'", "valid: auto, cpu, cuda, mps"),
    (["trainer.precision=8"], "trainer.precision='8'", "valid: 32, bf16, 16, auto"),
    (["trainer.channels_last=maybe"], "trainer.channels_last='maybe'", "true, false, auto"),
    (["trainer.compile=2"], "trainer.compile=2", "valid: true, false, auto"),
    (["trainer.num_threads=0"], "trainer.num_threads=0", ">= 1, or null"),
    (["trainer.checkpoint_every_steps=-1"], "trainer.checkpoint_every_steps=-1", ">= 0"),
    (["trainer.log_every_steps=-5"], "trainer.log_every_steps=-5", ">= 0"),
    (["trainer.response_images=-1"], "trainer.response_images=-1", ">= 0"),
    (["data.name=imagenet"], "data.name='imagenet'", "valid: fashionmnist, mnist, cifar10"),
    (["data.batch_size=0"], "data.batch_size=0", ">= 1"),
    (["data.eval_batch_size=-1"], "data.eval_batch_size=-1", ">= 1, or null"),
    (["data.val_size=-1"], "data.val_size=-1", ">= 0"),
    (["data.train_subset=0"], "data.train_subset=0", ">= 1, or null"),
    (["data.test_subset=0"], "data.test_subset=0", ">= 1, or null"),
    (["data.resize=0"], "data.resize=0", ">= 1, or null"),
    (["data.loader=dali"], "data.loader='dali'", "valid: tensor, torchvision"),
    (["data.num_workers=-2"], "data.num_workers=-2", ">= 0"),
    (["data.in_channels=0"], "data.in_channels=0", ">= 1"),
    (["data.in_channels=2"], "data.in_channels=2", "use 1 (or 3"),
    (["data.num_classes=5"], "data.num_classes=5", "at least 10"),
    (["data.mean=[0.1,0.2]"], "data.mean=[0.1, 0.2]", "one per channel"),
    (["data.std=[0.0]"], "data.std=[0.0]", "> 0"),
    (["data.train_subset=320", "data.val_size=320"], "data.val_size=320", "between 0 and 318"),
    (["model.shortcut=D"], "model.shortcut='D'", "valid: A, B, C"),
    (["model.in_channels=0"], "model.in_channels=0", ">= 1"),
    (["model.num_classes=0"], "model.num_classes=0", ">= 1"),
    (["model.family=tiny"], "model.family='tiny'", "valid: cifar, imagenet"),
    (["optimizer.lr=-0.1"], "optimizer.lr=-0.1", "> 0"),
    (["optimizer.momentum=1.5"], "optimizer.momentum=1.5", "in [0, 1)"),
    (["optimizer.weight_decay=-1"], "optimizer.weight_decay=-1.0", ">= 0"),
    (["optimizer=adam", "optimizer.betas=[0.9,1.0]"], "optimizer.betas=[0.9, 1.0]", "[0, 1)"),
    (["scheduler.milestones=[0.5,1.5]"], "scheduler.milestones=[0.5, 1.5]", "(0, 1)"),
    (["scheduler.milestones=[0.75,0.5]"], "scheduler.milestones=[0.75, 0.5]", "increase"),
    (["scheduler.gamma=0"], "scheduler.gamma=0.0", "in (0, 1]"),
    (["scheduler.warmup_steps=-1"], "scheduler.warmup_steps=-1", ">= 0"),
    (["scheduler.warmup_factor=0"], "scheduler.warmup_factor=0.0", "in (0, 1]"),
    (["scheduler=cosine", "scheduler.min_factor=2"], "scheduler.min_factor=2.0", "[0, 1]"),
    (["logger.mode=sometimes"], "logger.mode='sometimes'", "valid: auto, online, offline"),
    (["logger.init_timeout=0"], "logger.init_timeout=0.0", "> 0"),
    (["trainer.resume=/no/such.pt"], "trainer.resume='/no/such.pt'", "auto"),
    (["+trainer.epoch=2"], "trainer.epoch is not a config key", "epochs, device"),
    (["+foo=1"], "foo is not a config key", "seed, model, data"),
    (["+model.width=2"], "model.width is not a config key", "depth, family, shortcut"),
    (["logger=none", "+logger.colour=red"], "logger.colour", "mode, project"),
]


@pytest.mark.parametrize(
    ("overrides", "named", "valid"), BAD_VALUES, ids=[" ".join(o) for o, *_ in BAD_VALUES]
)
def test_each_bad_value_is_one_paragraph_from_the_validation_layer(
    overrides: list[str], named: str, valid: str
) -> None:
    with pytest.raises(InvalidConfig) as info:
        validate(compose(overrides))
    message = str(info.value)
    assert named in message and valid in message, message
    assert "\n" not in message


def test_every_ruled_key_has_a_bad_value_test() -> None:
    """A rule added to a schema without a test here makes this fail."""
    schemas = {
        "model": [config.ModelConfig],
        "data": [config.DataConfig],
        "optimizer": [config.SGDConfig, config.AdamConfig],
        "scheduler": [config.MultiStepScheduleConfig, config.CosineScheduleConfig],
        "trainer": [config.TrainerConfig],
        "logger": [config.LoggerConfig],
    }
    ruled = {
        f"{group}.{f.name}"
        for group, classes in schemas.items()
        for cls in classes
        for f in dataclasses.fields(cls)
        if "rule" in f.metadata
    }
    tested = {named.split("=")[0].split(" ")[0] for _, named, _ in BAD_VALUES}
    assert ruled <= tested, sorted(ruled - tested)


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["optimizer=adam"],
        ["optimizer=adamw", "scheduler=cosine"],
        ["scheduler=none", "logger=none"],
        ["model=resnet50", "data=cifar100", "data.resize=64"],
        ["data.in_channels=3", "trainer.device=cuda:1", "trainer.compile=true"],
        ["model.shortcut=b", "trainer.precision=BF16", "trainer.num_threads=2"],
        ["experiment=degradation_quick", "logger=none"],
        ["experiment=degradation", "logger=none"],
    ],
)
def test_valid_configs_pass(overrides: list[str]) -> None:
    validate(compose(overrides))


def test_validation_runs_before_torch_is_imported() -> None:
    code = (
        "import sys, json\n"
        "from resnet_exp.hydra_glue.compose import compose\n"
        "from resnet_exp.validation import InvalidConfig, validate\n"
        "validate(compose(['data=cifar10']))\n"
        "try:\n"
        "    validate(compose(['trainer.precision=8']))\n"
        "except InvalidConfig as e:\n"
        "    print(json.dumps({'error': str(e), 'torch': 'torch' in sys.modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert "trainer.precision='8'" in result["error"]
    assert result["torch"] is False


# -- dataset facts have one home ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_dataset_facts_have_one_home(name: str) -> None:
    """conf/data/*.yaml write no fact of their own: each comes from resnet_exp.data.facts."""
    text = (REPO / "conf" / "data" / f"{name}.yaml").read_text()
    keys = yaml.safe_load(text)
    assert not {"in_channels", "num_classes", "mean", "std"} & set(keys)
    data = compose([f"data={name}"]).data
    info = DATASETS[name]
    assert (data.in_channels, data.num_classes) == (info.channels, info.num_classes)
    assert (list(data.mean), list(data.std)) == (list(info.mean), list(info.std))


def test_a_dataset_name_override_brings_its_own_facts() -> None:
    cfg = compose(["data.name=cifar10"])
    assert (cfg.data.in_channels, cfg.model.in_channels, len(cfg.data.std)) == (3, 3, 3)


# -- logger=none with every preset -----------------------------------------------------------------


@pytest.mark.parametrize(
    "preset", sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))
)
def test_logger_none_instantiates_with_every_preset(preset: str) -> None:
    from hydra.utils import instantiate

    from resnet_exp.tracking.wandb_logger import NullLogger

    cfg = compose([f"experiment={preset}", "logger=none"])
    assert isinstance(instantiate(cfg.logger), NullLogger)


@pytest.mark.slow
def test_degradation_quick_with_logger_none_completes_every_job(
    tmp_path: Path, fmnist_root: Path
) -> None:
    sweep = tmp_path / "sweep"
    result = run_cli(
        "experiment=degradation_quick",
        "logger=none",
        f"data.root={fmnist_root}",
        "data.train_subset=96",
        "data.val_size=32",
        "data.test_subset=64",
        "data.batch_size=32",
        "scheduler.warmup_steps=1",
        "trainer.epochs=1",
        "model/depth=8,14",  # the preset's 20,56 at a tiny size, same sweep shape
        "seed=0",  # one of the preset's replicate seeds is enough here
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Error in call to target" not in result.stderr
    summaries = sorted(sweep.glob("*/summary.json"))
    assert len(summaries) == 4
    for path in summaries:
        summary = json.loads(path.read_text())
        assert summary["status"] == "completed", summary
        assert not (path.parent / "wandb").exists()
