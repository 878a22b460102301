"""Structured-config schemas: each key's type, default and valid choices or range.

``conf/`` YAML states only what differs, so a wrong type or unknown key fails at composition; what
a type cannot say is a :class:`Rule` in the field's metadata, walked by
:func:`resnet_exp.validation.validate` before torch is imported. No torch or Hydra here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from resnet_exp.data.facts import DATASETS
from resnet_exp.models.facts import (
    DEFAULT_FAMILY,
    FAMILIES,
    SHORTCUTS,
    default_shortcuts,
    shortcut_options,
)
from resnet_exp.tracking.facts import LOGGER_MODES, WANDB_INIT_TIMEOUT_S, WANDB_PROJECT
from resnet_exp.training.facts import DEVICES, PRECISION_CHOICES, SWITCH_CHOICES


@dataclass(frozen=True)
class Rule:
    """What one config key accepts beyond its type (a list is checked item by item); ``null``:
    what null means where allowed, ``hint``: advice appended to the error."""

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
            shown = (str(c).lower() if isinstance(c, bool) else str(c) for c in self.choices)
            text = "valid: " + ", ".join(shown)  # a bool as YAML writes it: true, not True
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


LOADERS = ("tensor", "torchvision")


def _fact(fact: str) -> str:
    """A dataset fact interpolated from data.name (resnet_exp.data.facts is their one home)."""
    return "${resnet_exp.dataset:${.name}," + fact + "}"


@dataclass
class ModelConfig:
    _target_: str = "resnet_exp.models.ResNet"
    block: Any = MISSING
    depth: int = MISSING  # fit against the block is checked by the model (it knows the layouts)
    family: str = ruled(DEFAULT_FAMILY, choices=tuple(FAMILIES))
    # The default family's own shortcut; a depth preset of another family names its own.
    shortcut: str | None = ruled(
        FAMILIES[DEFAULT_FAMILY].default_shortcut, choices=tuple(SHORTCUTS), ignore_case=True,
        null=f"the family's default: {default_shortcuts()}", hint=shortcut_options(),
    )  # fmt: skip
    # The data config's, so a model and its data agree unless a preset says otherwise.
    in_channels: int = ruled("${data.in_channels}", ge=1)
    num_classes: int = ruled("${data.num_classes}", ge=1)
    zero_init_residual: bool = False


@dataclass
class DataConfig:
    _target_: str = "resnet_exp.data.DataModule"
    name: str = ruled(MISSING, choices=tuple(DATASETS))
    root: str = "${oc.env:RESNET_EXP_DATA,data}"  # the environment's data folder, else ./data
    download: bool = True  # torchvision's, when files are missing (offline: gives up in seconds)
    # The dataset's own facts by default; in_channels=3 on a gray dataset repeats its channel.
    in_channels: int = ruled(_fact("channels"), ge=1)
    num_classes: int = ruled(_fact("num_classes"), ge=1)
    mean: list[float] = ruled(_fact("mean"))
    std: list[float] = ruled(_fact("std"), gt=0)
    batch_size: int = ruled(128, ge=1)
    eval_batch_size: int | None = ruled(512, ge=1, null="twice batch_size")
    # held out of the (train_subset-trimmed) training images; null: a tenth, at most 5000 (facts.py)
    val_size: int | None = ruled(None, ge=0, null="a tenth of the training images, at most 5000")
    # first N training images, for quick runs
    train_subset: int | None = ruled(None, ge=1, null="all training images")
    # first N test images (quick runs only; papers use the whole test set)
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
    # default run: ResNet-20 on Fashion-MNIST, >= 90% test accuracy in < 15 min on 2 CPU cores
    epochs: int = ruled(4, ge=1)
    # auto picks cuda, then mps, then cpu
    device: str = ruled("auto", choices=DEVICES, pattern=r"cuda:\d+", hint="cuda:N picks a GPU")
    # Speed switches (autocast precision, NHWC, torch.compile): `auto` picks what was measured
    # faster on the device at hand (rules: training/speed.py). A bool or "auto", so typed Any.
    precision: str = ruled("auto", choices=PRECISION_CHOICES, ignore_case=True)
    channels_last: Any = ruled("auto", choices=SWITCH_CHOICES)
    compile: Any = ruled("auto", choices=SWITCH_CHOICES)
    # torch intra-op threads; null: decided from the run's own launch (training/threads.py)
    num_threads: int | None = ruled(None, ge=1, null="torch's default")
    resume: str = "auto"  # auto | never | <checkpoint path>: checked against the filesystem
    checkpoint_every_steps: int = ruled(0, ge=0, hint="0: only at epoch ends")
    # A training loss/error row (running mean over the window) every N steps in metrics.jsonl and
    # W&B (x-axis: step; Fig. 6 by iteration); null: about 100 rows per run, 0: epoch rows only.
    # Outside a terminal also a progress line every N steps (and at least every ~30 s).
    log_every_steps: int | None = ruled(None, ge=0, null="about 100 rows per run")
    # At the end, std of every 3x3 layer's response (paper Fig. 7) on this many fixed validation
    # images -> layer_responses.csv; 0: off.
    response_images: int = ruled(256, ge=0, hint="0: no layer responses")
    progress: bool = True  # bars on a terminal, plain lines elsewhere (training/progress.py)
    sync_bn: bool = False  # DDP (torchrun) on GPUs: BatchNorm statistics over the global batch
    debug_checksum: bool = False  # DDP: log a SHA-256 of each rank's final weights (tests compare)


@dataclass
class LoggerConfig:
    """Shared by logger=wandb and logger=none, so a preset's logger keys work with either."""

    _target_: str = "resnet_exp.tracking.wandb_logger.WandbLogger"
    mode: str = ruled("auto", choices=LOGGER_MODES)
    project: str = WANDB_PROJECT
    entity: str | None = None
    dir: str | None = None
    init_timeout: float = ruled(WANDB_INIT_TIMEOUT_S, gt=0)
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
