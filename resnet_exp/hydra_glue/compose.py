"""The packaged config tree composed outside ``@hydra.main`` (summary tool, preflight, tests,
reports), and a config node built into its object; each failure is one clear paragraph, never
Hydra's "Error in call to target" or a bare traceback."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException, InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf

from resnet_exp.config_dir import config_dir
from resnet_exp.errors import UserError, user_error
from resnet_exp.hydra_glue.register import register

_HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}


@contextlib.contextmanager
def config_loader() -> Iterator[Any]:
    """Hydra's loader of our config tree, for the block (``glob()`` lists a group's options);
    inside a running job (a launcher's worker naming its folder) the job's own loader."""
    register()
    if GlobalHydra.instance().is_initialized():
        yield GlobalHydra.instance().config_loader()
        return
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        yield GlobalHydra.instance().config_loader()


def compose(overrides: Sequence[str] = (), return_hydra_config: bool = False) -> DictConfig:
    """The config ``python -m resnet_exp <overrides>`` would run with."""
    _refuse_null_groups(overrides)
    with config_loader():
        return hydra_compose(
            config_name="config", overrides=list(overrides), return_hydra_config=return_hydra_config
        )


def _refuse_null_groups(overrides: Sequence[str]) -> None:
    """``data=null`` sets a config group to nothing; Hydra's defaults list answers with a bare
    ValueError (a traceback). Said here as a composition error naming the group's options."""
    root = config_dir()
    for override in overrides:
        key, sep, value = override.partition("=")
        group = key.lstrip("+~")
        if not sep or value.strip().lower() != "null" or key.startswith("~"):
            continue
        folder = root / group
        if folder.is_dir() and not (root / f"{group}.yaml").is_file():
            raise ConfigCompositionException(
                f"{group}={value.strip()}: a config group cannot be set to null; choose one of "
                f"its options ({', '.join(group_options(group))}), or leave {group} out for its "
                "default."
            )


def group_options(group: str) -> list[str]:
    """The options of config group ``group`` (``hydra/sweeper/pruner``): its yaml files."""
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def composition_error(error: BaseException) -> str:
    """Hydra's composition error with its reason: ``Error merging override data.std=0`` alone does
    not say why; the first line of the cause (OmegaConf's validation message) does."""
    message = " ".join(str(error).split("\nSee https://")[0].split())
    if message.startswith("Could not override '"):  # Hydra's hint (+key=...) only adds a key
        key = message.split("'")[1]
        message = f"{key} is not a config key"
    cause = error.__cause__ or error.__context__
    if cause is not None:
        reason = (str(cause).strip().splitlines() or [""])[0].strip()
        if reason and reason not in message:
            message = f"{message.rstrip('.')}: {reason}"
    return message


def instantiate_node(node: DictConfig, key: str) -> Any:
    """``hydra.utils.instantiate(node)``, with a bad key or a failing constructor reported as a
    :class:`UserError` naming ``key``, the offending option and the options the target takes; a
    ``_partial_`` node's callable reports a failing call the same way."""
    target_name = str(node.get("_target_"))
    try:
        target = get_object(target_name)
    except Exception as error:
        raise UserError(f"{key}._target_={target_name!r} cannot be imported ({error}).") from None
    valid = valid_keys(target)
    given = [k for k in OmegaConf.to_container(node, resolve=False) if k not in _HYDRA_KEYS]
    unknown = [k for k in given if valid is not None and k not in valid]
    if unknown:
        raise UserError(
            f"{', '.join(f'{key}.{k}' for k in unknown)}: not an option of {key} ({target_name})."
            f" Valid keys of {key}: {_listing(valid)}. Remove it, or choose another {key} that "
            "takes it."
        )
    try:
        built = instantiate(node)
    except InstantiationException as error:
        raise _as_user_error(error, key, target_name, valid) from None
    if not node.get("_partial_", False):
        return built

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return built(*args, **kwargs)
        except (TypeError, ValueError) as error:
            raise _as_user_error(error, key, target_name, valid) from None

    return call


def valid_keys(target: Any) -> list[str] | None:
    """Keyword options ``target`` accepts; None when it takes any (``**kwargs``) or cannot tell."""
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in params if p.kind in keyword and p.name not in ("self", "params")]


def _as_user_error(
    error: BaseException, key: str, target_name: str, valid: list[str] | None
) -> UserError:
    inner = user_error(error)  # a UserError raised inside the constructor keeps its own message
    if inner is not None:
        return inner
    reason = error.__cause__ or error
    options = f" Valid keys of {key}: {_listing(valid)}." if valid is not None else ""
    return UserError(
        f"cannot build {key} ({target_name}): {type(reason).__name__}: {reason}.{options}"
    )


def _listing(keys: list[str]) -> str:
    return ", ".join(keys) if keys else "(none: it takes no options)"
