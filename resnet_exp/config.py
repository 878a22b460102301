"""Structured-config schemas, and the one place where each key's choices and range are written.

The YAML files under ``conf/`` pull these schemas in through their defaults lists, so a wrong type
(``data.batch_size=abc``) or an unknown key (``trainer.epoch=3``) fails while the config is
composed. What a type cannot say (lr > 0, precision in 32|bf16|16|auto, ...) is a :class:`Rule`
stored in the field's metadata, next to its default; :func:`resnet_exp.validation.validate` walks
these rules once, before torch is imported. Domain code (models, data, training) does not repeat
them. Nothing here imports torch or Hydra: ``hydra_glue/register.py`` puts the schemas in Hydra's
ConfigStore.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from resnet_exp.data.facts import DATASETS


@dataclass(frozen=True)
class Rule:
    """What one config key accepts beyond its type. A list value is checked item by item.

    ``choices``: the valid values (``pattern``: a regex also accepted); ``ge/gt/le/lt``: bounds;
    ``null``: what null means where null is allowed; ``increasing``: list items strictly increase;
    ``hint``: an example or advice appended to the error.
    """

    choices: tuple[Any, ...] = ()
    pattern: str = ""
    ignore_case: bool = False
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    null: str = ""
    increasing: bool = False
    hint: str = ""

    def accepts(self, value: Any) -> bool:
        if value is None:
            return bool(self.null)
        if isinstance(value, (list, tuple)):
            items = list(value)
            ordered = not self.increasing or all(a < b for a, b in zip(items, items[1:]))
            return ordered and all(self._accepts_one(v) for v in items)
        return self._accepts_one(value)

    def _accepts_one(self, value: Any) -> bool:
        if self.choices or self.pattern:
            text = str(value).lower() if self.ignore_case else value
            # type-exact: 1 is not True, "true" is not True
            chosen = any(type(text) is type(c) and text == self._fold(c) for c in self.choices)
            return chosen or bool(self.pattern and re.fullmatch(self.pattern, str(value)))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return not (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
            or (self.lt is not None and value >= self.lt)
        )

    def _fold(self, choice: Any) -> Any:
        return choice.lower() if self.ignore_case and isinstance(choice, str) else choice

    def describe(self) -> str:
        """What is valid, as the error message says it."""
        if self.choices:
            text = "valid: " + ", ".join(_show(c) for c in self.choices)
        else:
            ge, gt, le, lt = self.ge, self.gt, self.le, self.lt
            low = f"[{ge}" if ge is not None else "" if gt is None else f"({gt}"
            high = f"{le}]" if le is not None else "" if lt is None else f"{lt})"
            if low and high:
                text = f"must be in {low}, {high}"
            elif low:
                text = f"must be {'>=' if low[0] == '[' else '>'} {low[1:]}"
            else:
                text = f"must be {'<=' if high[-1] == ']' else '<'} {high[:-1]}"
            if self.increasing:
                text = "items must increase and each " + text
        if self.hint:
            text += f" ({self.hint})"
        return text + (f", or null ({self.null})" if self.null else "")


def _show(choice: Any) -> str:
    return str(choice).lower() if isinstance(choice, bool) else str(choice)


def ruled(default: Any = MISSING, **rule: Any) -> Any:
    """A dataclass field with a :class:`Rule` (a list default is copied per instance)."""
    meta = {"rule": Rule(**rule)}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def rule_of(schema: type, key: str) -> Rule | None:
    """The rule declared for ``schema.key``, if any."""
    for f in getattr(schema, "__dataclass_fields__", {}).values():
        if f.name == key:
            return f.metadata.get("rule")
    return None


#: Choices shared with the domain code that maps them (a test checks they agree).
PRECISIONS = ("32", "bf16", "16", "auto")
SWITCH = (True, False, "auto")
DEVICES = ("auto", "cpu", "cuda", "mps")
SHORTCUTS = ("A", "B", "C")
FAMILIES = ("cifar", "imagenet")
LOADERS = ("tensor", "torchvision")
LOGGER_MODES = ("auto", "online", "offline", "disabled")


def _fact(fact: str) -> str:
    """A dataset fact interpolated from data.name (resnet_exp.data.facts is their one home)."""
    return "${resnet_exp.dataset:${.name}," + fact + "}"


@dataclass
class ModelConfig:
    _target_: str = "resnet_exp.models.ResNet"
    block: Any = MISSING
    depth: int = MISSING  # fit against the block is checked by the model (it knows the layouts)
    family: str = ruled("cifar", choices=FAMILIES)
    shortcut: str | None = ruled(
        None,
        choices=SHORTCUTS,
        ignore_case=True,
        null="the family's default: A for cifar, B for imagenet",
        hint="A: zero-pad identity, B: projection where the shape changes, C: projection "
        "everywhere",
    )
    in_channels: int = ruled(MISSING, ge=1)
    num_classes: int = ruled(MISSING, ge=1)
    zero_init_residual: bool = False


@dataclass
class DataConfig:
    _target_: str = "resnet_exp.data.DataModule"
    name: str = ruled(MISSING, choices=tuple(DATASETS))
    root: str = "data"
    download: bool = False
    # The dataset's own facts by default; in_channels=3 on a gray dataset repeats its channel.
    in_channels: int = ruled(_fact("channels"), ge=1)
    num_classes: int = ruled(_fact("num_classes"), ge=1)
    image_size: int = ruled(_fact("size"), ge=1)
    mean: list[float] = ruled(_fact("mean"))
    std: list[float] = ruled(_fact("std"), gt=0)
    batch_size: int = ruled(128, ge=1)
    eval_batch_size: int | None = ruled(None, ge=1, null="twice batch_size")
    val_size: int = ruled(5000, ge=0, hint="0: no validation split")
    train_subset: int | None = ruled(None, ge=1, null="all training images")
    test_subset: int | None = ruled(None, ge=1, null="the whole test set")
    augment: bool = False
    resize: int | None = ruled(None, ge=1, null="the dataset's own size")
    loader: str = ruled("tensor", choices=LOADERS)
    num_workers: int = ruled(0, ge=0)


@dataclass
class SGDConfig:
    _target_: str = "torch.optim.SGD"
    _partial_: bool = True
    lr: float = ruled(0.1, gt=0, hint="e.g. 0.1 for SGD")
    momentum: float = ruled(0.9, ge=0, lt=1)
    weight_decay: float = ruled(1e-4, ge=0)
    nesterov: bool = False


@dataclass
class AdamConfig:
    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    lr: float = ruled(1e-3, gt=0, hint="e.g. 1e-3 for Adam")
    betas: list[float] = ruled([0.9, 0.999], ge=0, lt=1)
    weight_decay: float = ruled(0.0, ge=0)


@dataclass
class ConstantScheduleConfig:
    _target_: str = "resnet_exp.training.schedules.constant"
    _partial_: bool = True
    warmup_steps: int = ruled(0, ge=0, hint="0: no warm-up")
    warmup_factor: float = ruled(
        0.1, gt=0, le=1, hint="the warm-up starts at this fraction of the lr"
    )


@dataclass
class MultiStepScheduleConfig(ConstantScheduleConfig):
    _target_: str = "resnet_exp.training.schedules.multistep"
    milestones: list[float] = ruled(
        [0.5, 0.75], gt=0, lt=1, increasing=True, hint="fractions of training, e.g. [0.5, 0.75]"
    )
    gamma: float = ruled(0.1, gt=0, le=1)


@dataclass
class CosineScheduleConfig(ConstantScheduleConfig):
    _target_: str = "resnet_exp.training.schedules.cosine"
    min_factor: float = ruled(0.0, ge=0, le=1)


@dataclass
class TrainerConfig:
    epochs: int = ruled(4, ge=1)
    device: str = ruled("auto", choices=DEVICES, pattern=r"cuda:\d+", hint="cuda:N picks a GPU")
    # Speed switches; `auto` resolves per device (resnet_exp.training.speed, docs/performance.md).
    precision: str = ruled("auto", choices=PRECISIONS, ignore_case=True)
    # a bool or the string "auto", so typed Any; the rule keeps it to those three
    channels_last: Any = ruled("auto", choices=SWITCH)
    compile: Any = ruled("auto", choices=SWITCH)
    num_threads: int | None = ruled(None, ge=1, null="torch's default")
    resume: str = "auto"  # auto | never | <checkpoint path>: checked against the filesystem
    checkpoint_every_steps: int = ruled(0, ge=0, hint="0: only at epoch ends")
    # Per-step training rows (Fig. 6 by iteration); null: about 100 per run, 0: epoch rows only.
    log_every_steps: int | None = ruled(None, ge=0, null="about 100 rows per run")
    # Fig. 7 layer responses, measured on this many fixed validation images; 0: off.
    response_images: int = ruled(256, ge=0, hint="0: no layer responses")
    progress: bool = True
    sync_bn: bool = False
    debug_checksum: bool = False  # log a SHA-256 of each DDP rank's final weights (tests compare)


@dataclass
class LoggerConfig:
    """Shared by logger=wandb and logger=none, so a preset's logger keys work with either."""

    _target_: str = "resnet_exp.tracking.wandb_logger.WandbLogger"
    mode: str = ruled("auto", choices=LOGGER_MODES)
    project: str = "resnet-exp"
    entity: str | None = None
    dir: str | None = None
    init_timeout: float = ruled(15.0, gt=0)
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    notes: str | None = None


@dataclass
class Config:
    seed: int = ruled(0, ge=0, le=2**64 - 1, hint="the seeds torch's random generators take")
    model: ModelConfig = MISSING
    data: DataConfig = MISSING
    optimizer: Any = MISSING
    scheduler: Any = MISSING
    trainer: TrainerConfig = MISSING
    logger: Any = MISSING
