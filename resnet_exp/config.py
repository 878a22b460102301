"""Structured-config schemas, registered in Hydra's ConfigStore under the `schema` group.

The YAML files under ``conf/`` pull these in through their defaults lists, so a wrong type
(``data.batch_size=abc``) or an unknown key (``trainer.epoch=3``) fails while the config is
composed, with Hydra's own message, before anything is built or written. Value ranges that a type
cannot express (lr > 0, batch >= 1, ...) are checked in :mod:`resnet_exp.validation`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from resnet_exp.hydra_compat import allow_numeric_group_options


@dataclass
class ModelConfig:
    _target_: str = "resnet_exp.models.ResNet"
    block: Any = MISSING
    depth: int = MISSING
    family: str = "cifar"
    shortcut: str | None = None
    in_channels: int = MISSING
    num_classes: int = MISSING
    zero_init_residual: bool = False


@dataclass
class DataConfig:
    _target_: str = "resnet_exp.data.DataModule"
    name: str = MISSING
    root: str = "data"
    download: bool = False
    in_channels: int = MISSING
    num_classes: int = MISSING
    image_size: int = MISSING
    mean: list[float] = MISSING
    std: list[float] = MISSING
    batch_size: int = 128
    eval_batch_size: int | None = None
    val_size: int = 5000
    train_subset: int | None = None
    test_subset: int | None = None
    augment: bool = False
    resize: int | None = None
    loader: str = "tensor"
    num_workers: int = 0


@dataclass
class SGDConfig:
    _target_: str = "torch.optim.SGD"
    _partial_: bool = True
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False


@dataclass
class AdamConfig:
    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0


@dataclass
class ConstantScheduleConfig:
    _target_: str = "resnet_exp.training.schedules.constant"
    _partial_: bool = True
    warmup_steps: int = 0
    warmup_factor: float = 0.1


@dataclass
class MultiStepScheduleConfig(ConstantScheduleConfig):
    _target_: str = "resnet_exp.training.schedules.multistep"
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])
    gamma: float = 0.1


@dataclass
class CosineScheduleConfig(ConstantScheduleConfig):
    _target_: str = "resnet_exp.training.schedules.cosine"
    min_factor: float = 0.0


@dataclass
class TrainerConfig:
    epochs: int = 4
    device: str = "auto"
    # Speed switches; `auto` resolves per device (resnet_exp.training.speed, docs/performance.md).
    precision: str = "auto"  # 32 | bf16 | 16 | auto
    # true | false | auto: a bool or the string "auto", so typed Any and checked in validation.py
    channels_last: Any = "auto"
    compile: Any = "auto"
    num_threads: int | None = None
    resume: str = "auto"
    checkpoint_every_steps: int = 0
    log_every_steps: int | None = None  # per-step training rows; null: about 100 per run
    response_images: int = 256  # Fig. 7 layer responses on this many fixed images; 0: off
    progress: bool = True
    sync_bn: bool = False


@dataclass
class LoggerConfig:
    _target_: str = "resnet_exp.tracking.wandb_logger.WandbLogger"
    mode: str = "auto"
    project: str = "resnet-exp"
    entity: str | None = None
    dir: str | None = None
    init_timeout: float = 15.0
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    notes: str | None = None


@dataclass
class Config:
    seed: int = 0
    model: ModelConfig = MISSING
    data: DataConfig = MISSING
    optimizer: Any = MISSING
    scheduler: Any = MISSING
    trainer: TrainerConfig = MISSING
    logger: Any = MISSING


def register_configs() -> None:
    """Make the schemas visible to the defaults lists of conf/ (idempotent)."""
    allow_numeric_group_options()
    from resnet_exp.launcher import register_resolvers

    register_resolvers()  # ${resnet_exp.local_jobs:} in conf/hydra/launcher/joblib.yaml
    from resnet_exp.run_dir import register_resolver

    register_resolver()  # ${resnet_exp.fresh_dir:...} in conf/config.yaml's hydra.run.dir
    cs = ConfigStore.instance()
    cs.store(name="schema", node=Config)
    cs.store(group="schema", name="model", node=ModelConfig)
    cs.store(group="schema", name="data", node=DataConfig)
    cs.store(group="schema/optimizer", name="sgd", node=SGDConfig)
    cs.store(group="schema/optimizer", name="adam", node=AdamConfig)
    cs.store(group="schema/scheduler", name="constant", node=ConstantScheduleConfig)
    cs.store(group="schema/scheduler", name="multistep", node=MultiStepScheduleConfig)
    cs.store(group="schema/scheduler", name="cosine", node=CosineScheduleConfig)
    cs.store(group="schema", name="trainer", node=TrainerConfig)
    cs.store(group="schema", name="logger", node=LoggerConfig)
