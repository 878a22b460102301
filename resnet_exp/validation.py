"""The config layer's checks: every config value is checked here before torch is imported.

What each key accepts is declared next to its schema field (:class:`resnet_exp.config.Rule`);
:func:`validate` walks those rules, then the checks that relate keys to each other or to the world
(dataset facts, the resume checkpoint, the run folder): one paragraph per failure, so a typo costs
a second, not a run. Checks that need the data or the model are raised by the classes that have
them, with the same rules (``split_problem`` here and in the DataModule).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from resnet_exp.config import Config, Rule, rule_of
from resnet_exp.data.facts import DATASETS, split_problem
from resnet_exp.errors import UserError


class InvalidConfig(UserError, ValueError):
    """A config value outside its valid range, or a key no schema knows."""


def validate(cfg: DictConfig, run_dir: Path | None = None) -> None:
    """Raise :class:`InvalidConfig` for the first bad value (imports no torch: fast)."""
    check_resolves(cfg)
    _check_finite(cfg)
    _check_keys_and_rules(cfg)
    _check_data_fits_dataset(cfg.data)
    _check_model_fits_data(cfg.model, cfg.data)
    _check_betas(cfg.optimizer)
    _check_data_root(str(cfg.data.root))
    _check_resume(str(cfg.trainer.resume))
    if run_dir is not None:
        _check_writable(Path(run_dir))


def check_resolves(cfg: DictConfig) -> None:
    """Every key has a value (``~model`` removes one a run needs) and every ``${...}`` resolves:
    an interpolation is user input (a missing key or environment variable, a resolver given bad
    arguments), named by its key before any value is read."""
    absent = [f.name for f in dataclasses.fields(Config) if f.name not in cfg]
    for key in absent + list(_missing(OmegaConf.to_container(cfg, resolve=False))):
        raise InvalidConfig(
            f"{key} has no value (removed with ~, or never set) and every run needs one: set it "
            "(a config group to one of its options, which --help lists), or drop the ~ override."
        )
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as error:
        node = getattr(error, "child_node", None)
        raise InvalidConfig(unresolvable(str(error.full_key), str(node), error)) from None


def _missing(node: Any, path: str = "") -> Iterator[str]:
    """The dotted key of each ``???`` in a plain container."""
    for name, value in node.items() if isinstance(node, dict) else enumerate(node):
        key = f"{path}.{name}" if path else str(name)
        if value == "???":
            yield key
        elif isinstance(value, (dict, list)):
            yield from _missing(value, key)


def unresolvable(key: str, raw: str, error: BaseException) -> str:
    """One paragraph for ``key=raw`` whose interpolation failed with ``error``."""
    reason = (str(error).strip().splitlines() or [""])[0]
    reason = re.sub(r"^\w+ raised while resolving interpolation: ", "", reason).strip('"')
    reason = re.sub(r"^\S+\(\) ", "", reason).rstrip(".")  # "<lambda>() takes 0 arguments"
    return (
        f"{key}={raw!r} cannot be resolved: {reason}. An interpolation names a key "
        "(${data.name}), a set environment variable (${oc.env:NAME[,default]}) or a resolver "
        "with its arguments (${resnet_exp.dataset:<data.name>,<fact>}); fix it, or leave it out."
    )


# -- every key against its schema: known, and within its declared rule -----------------------------


def _nodes(cfg: DictConfig) -> Iterator[tuple[str, DictConfig, type]]:
    """(dotted path, node, schema) of the root and each group node built from a schema."""
    yield "", cfg, OmegaConf.get_type(cfg) or Config
    # data first: model.in_channels/num_classes and data's own facts interpolate from data.name
    keys = sorted((f.name for f in dataclasses.fields(Config)), key=lambda k: k != "data")
    for key in keys:
        node = cfg.get(key)
        schema = OmegaConf.get_type(node) if isinstance(node, DictConfig) else None
        if schema is not None and dataclasses.is_dataclass(schema):
            yield key, node, schema


def _check_keys_and_rules(cfg: DictConfig) -> None:
    for path, node, schema in _nodes(cfg):
        fields = {f.name: f for f in dataclasses.fields(schema)}
        unknown = [k for k in node if k not in fields and not (path == "" and k == "hydra")]
        if unknown:
            where = f"{path}." if path else ""
            valid = ", ".join(k for k in fields if not k.startswith("_"))
            raise InvalidConfig(
                f"{where}{unknown[0]} is not a config key{f' of {path}' if path else ''}; "
                f"valid keys: {valid}. Check the spelling (a `+` adds keys no schema knows)."
            )
        for name, f in fields.items():
            rule: Rule | None = f.metadata.get("rule")
            if rule is not None:
                key = f"{path}.{name}" if path else name
                value = node[name]
                _check_rule(key, list(value) if isinstance(value, ListConfig) else value, rule)


def _check_finite(cfg: DictConfig) -> None:
    """NaN and inf pass every range rule (each comparison with them is false), so every number in
    the config, at any depth and inside lists, is first checked to be finite."""
    for key, value, number, rule in _numbers(cfg, "", OmegaConf.get_type(cfg) or Config):
        if not math.isfinite(number):
            bounded = rule is not None and any(
                b is not None for b in (rule.ge, rule.gt, rule.le, rule.lt)
            )
            valid = f"; {key.rsplit('.', 1)[-1]} {rule.describe()}" if bounded else ""
            raise InvalidConfig(
                f"{key}={value}: {number} is not a finite number, and every numeric key takes a "
                f"finite value (nan, inf and -inf are refused){valid}."
            )


def _numbers(node: DictConfig, path: str, schema: type) -> Iterator[tuple[str, Any, float, Any]]:
    """(dotted key, its value, one float in it, the key's Rule or None) for every float in the
    config (a list's items count as its key's; ``hydra`` is not ours to check)."""
    for name in node:
        if path == "" and name == "hydra":
            continue
        key = f"{path}.{name}" if path else str(name)
        value = node[name]
        if isinstance(value, DictConfig):
            yield from _numbers(value, key, OmegaConf.get_type(value) or dict)
            continue
        items = list(value) if isinstance(value, ListConfig) else [value]
        shown = items if isinstance(value, ListConfig) else value
        for item in items:
            if isinstance(item, float):
                yield key, shown, item, rule_of(schema, str(name))


def _check_rule(key: str, value: Any, rule: Rule) -> None:
    if rule.accepts(value):
        return
    shown = repr(value) if rule.choices or isinstance(value, str) else value
    if rule.choices:
        raise InvalidConfig(f"{key}={shown} is not a valid choice; {rule.describe()}.")
    raise InvalidConfig(f"{key}={shown}: {rule.describe()}.")


# -- the data keys against the dataset's facts and each other -------------------------------------


def _check_data_fits_dataset(d: DictConfig) -> None:
    info = DATASETS[d.name]
    gray_to_rgb = (info.channels, d.in_channels) == (1, 3)
    if d.in_channels != info.channels and not gray_to_rgb:
        raise InvalidConfig(
            f"data.in_channels={d.in_channels} does not fit {d.name}, whose images have "
            f"{info.channels} channel(s); use {info.channels}"
            + (" (or 3 to repeat the gray channel)." if info.channels == 1 else ".")
        )
    if d.num_classes < info.num_classes:
        raise InvalidConfig(
            f"data.num_classes={d.num_classes} is too small for {d.name}, which has "
            f"{info.num_classes} classes; use at least {info.num_classes}."
        )
    for key in ("mean", "std"):
        values = list(d[key])
        if len(values) not in (1, d.in_channels):
            raise InvalidConfig(
                f"data.{key}={values} has {len(values)} values but the images have "
                f"{d.in_channels} channel(s); give one per channel (or one for all)."
            )
    problem = d.train_subset and split_problem(d.train_subset, d.val_size, d.train_subset)
    if problem:  # the whole training set's size is checked when the DataModule reads it
        raise InvalidConfig(problem)
    if d.num_workers and d.loader != "torchvision":
        raise InvalidConfig(
            f"data.num_workers={d.num_workers} has no effect with data.loader={d.loader} (it "
            "keeps every image in memory and needs no workers); use data.loader=torchvision with "
            "workers, or leave data.num_workers at 0."
        )


def _check_model_fits_data(m: DictConfig, d: DictConfig) -> None:
    """The model's input channels are what the data delivers, and it has an output for every
    label (a smaller head trains until the first label past it: an IndexError mid-epoch)."""
    if m.in_channels != d.in_channels:
        raise InvalidConfig(
            f"model.in_channels={m.in_channels} does not fit the data, whose images have "
            f"data.in_channels={d.in_channels} channel(s) ({d.name}); leave model.in_channels "
            "out (it follows data.in_channels) or set both to the same value."
        )
    labels = DATASETS[d.name].num_classes
    if m.num_classes < labels:
        raise InvalidConfig(
            f"model.num_classes={m.num_classes} is too small for {d.name}, whose labels are 0 to "
            f"{labels - 1}: the model needs at least {labels} outputs. Leave model.num_classes "
            f"out (it follows data.num_classes={d.num_classes}) or use at least {labels}."
        )


def _check_betas(optimizer: DictConfig) -> None:
    """Adam's betas are a pair; another length fails only once training starts."""
    betas = optimizer.get("betas")
    if betas is not None and len(betas) != 2:
        raise InvalidConfig(
            f"optimizer.betas={list(betas)} has {len(betas)} value(s); Adam takes two, the "
            "decay rates of the mean gradient and of its square, e.g. optimizer.betas=[0.9,0.999]."
        )


def _check_data_root(root: str) -> None:
    """An empty root is the current folder: the dataset would be unpacked wherever one stands."""
    if not root.strip():
        raise InvalidConfig(
            f"data.root={root!r} is empty (an unset shell variable?); give the folder that holds "
            "(or will hold) the datasets, e.g. data.root=data, or leave data.root out."
        )


# -- the world outside the config: the resume checkpoint, the run folder ---------------------------


def _check_resume(resume: str) -> None:
    if resume in ("auto", "never"):
        return
    if not Path(os.path.expanduser(resume)).is_file():
        raise InvalidConfig(
            f"trainer.resume={resume!r}: no checkpoint file there. Give the path of a "
            "checkpoints/last.pt written by resnet_exp, or use trainer.resume=auto (continue "
            "this run directory's own checkpoint) or never."
        )


def _check_writable(run_dir: Path) -> None:
    """The run directory must take files (Hydra made it; a read-only mount would fail late)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    except OSError as error:
        raise InvalidConfig(
            f"hydra.run.dir={str(run_dir)!r} cannot be written to ({error.strerror or error}); "
            "point hydra.run.dir (or hydra.sweep.dir) at a writable folder."
        ) from None
