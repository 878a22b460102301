"""Build a config node; any failure is our one clear paragraph, never "Error in call to target"."""

from __future__ import annotations

import inspect
from typing import Any

from omegaconf import DictConfig, OmegaConf

from resnet_exp.errors import UserError

_HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}


def instantiate_node(node: DictConfig, key: str) -> Any:
    """``hydra.utils.instantiate(node)``, with a bad key or a failing constructor reported as a
    :class:`UserError` naming ``key``, the offending option and the options the target takes.

    A ``_partial_`` node returns a callable that reports a failing call the same way (the optimizer
    only meets the model's parameters at run time)."""
    from hydra.errors import InstantiationException
    from hydra.utils import get_object, instantiate

    target_name = str(node.get("_target_"))
    try:
        target = get_object(target_name)
    except Exception as error:
        raise UserError(f"{key}._target_={target_name!r} cannot be imported ({error}).") from None
    _check_keys(node, key, target_name, target)
    try:
        built = instantiate(node)
    except InstantiationException as error:
        raise _as_user_error(error, key, target_name, target) from None
    if not node.get("_partial_", False):
        return built

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return built(*args, **kwargs)
        except (TypeError, ValueError) as error:
            raise _as_user_error(error, key, target_name, target) from None

    return call


def valid_keys(target: Any) -> list[str] | None:
    """Keyword options ``target`` accepts; None when it takes any (``**kwargs``) or cannot tell."""
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and p.name not in ("self", "params")
    ]


def _check_keys(node: DictConfig, key: str, target_name: str, target: Any) -> None:
    valid = valid_keys(target)
    if valid is None:
        return
    given = [k for k in OmegaConf.to_container(node, resolve=False) if k not in _HYDRA_KEYS]
    unknown = [k for k in given if k not in valid]
    if unknown:
        bad = ", ".join(f"{key}.{k}" for k in unknown)
        raise UserError(
            f"{bad}: not an option of {key} ({target_name}). Valid keys of {key}: "
            f"{_listing(valid)}. Remove it, or choose another {key} that takes it."
        )


def _as_user_error(error: BaseException, key: str, target_name: str, target: Any) -> UserError:
    cause: BaseException | None = error
    while cause is not None:  # a UserError raised inside the constructor keeps its own message
        if isinstance(cause, UserError):
            return cause
        cause = cause.__cause__ or cause.__context__
    reason = error.__cause__ or error
    valid = valid_keys(target)
    options = f" Valid keys of {key}: {_listing(valid)}." if valid is not None else ""
    return UserError(
        f"cannot build {key} ({target_name}): {type(reason).__name__}: {reason}.{options}"
    )


def _listing(keys: list[str]) -> str:
    return ", ".join(keys) if keys else "(none: it takes no options)"
