"""Secrets never leave: every record, name and W&B field is scrubbed here, the one home.

A value is hidden when its key looks like a secret (api_key, token, password, secret, any case) or
when it is a configured W&B API key (WANDB_API_KEY, or the netrc entry `wandb login` wrote), also
inside a longer string such as a URL, a command line or an interpolated `logger.notes`.
"""

from __future__ import annotations

import contextlib
import enum
import netrc
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePath
from typing import Any

from resnet_exp.atomic import atomic_write

REDACTED = "***"
SECRET_KEY_MARKERS = ("api_key", "apikey", "token", "password", "passwd", "secret")


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(marker in lowered for marker in SECRET_KEY_MARKERS)


def _values(secrets: Iterable[str] | None) -> tuple[str, ...]:
    """Values hidden wherever they appear, even under an innocent key: `secrets`, by default the
    W&B API key."""
    given = (os.environ.get("WANDB_API_KEY", ""), *_netrc_keys()) if secrets is None else secrets
    return tuple(s for s in given if s)


def _netrc_keys() -> list[str]:
    """The passwords of netrc's W&B entries (`wandb login` writes `machine api.wandb.ai`)."""
    host = (os.environ.get("WANDB_BASE_URL") or "wandb").split("//")[-1].split("/")[0]
    try:
        hosts = netrc.netrc(os.environ.get("NETRC")).hosts
    except Exception:  # no netrc, or one this parser rejects: nothing configured there
        return []
    return [entry[-1] for name, entry in hosts.items() if "wandb" in name or name == host]


def _to_container(obj: Any) -> Any:
    """Resolve an OmegaConf node into plain containers (wandb rejects a raw DictConfig)."""
    if type(obj).__module__.startswith("omegaconf"):
        # tracking takes plain values: omegaconf only for one of its nodes (then it is loaded)
        from omegaconf import OmegaConf

        if OmegaConf.is_config(obj):
            return OmegaConf.to_container(obj, resolve=True, throw_on_missing=False)
    return obj


def scrub_secrets(obj: Any, secrets: Iterable[str] | None = None) -> Any:
    """`obj` as plain JSON-like containers, '***' for a value under a secret-looking key or equal to
    (long: containing) one of `_values(secrets)`; other leaves (paths, enums) become strings."""
    return _scrub(obj, _values(secrets))


def _scrub(obj: Any, secrets: tuple[str, ...]) -> Any:
    obj = _to_container(obj)
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            key_str = _scrub_str(str(key), secrets)
            redact = _is_secret_key(key_str) and value not in (None, "")
            out[key_str] = REDACTED if redact else _scrub(value, secrets)
        return out
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_scrub(v, secrets) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float)):
        return obj
    if isinstance(obj, str):
        return _scrub_str(obj, secrets)
    if isinstance(obj, enum.Enum):
        return _scrub_str(obj.name, secrets)
    if isinstance(obj, PurePath):
        return _scrub_str(str(obj), secrets)
    try:  # numpy / torch scalars
        item = obj.item()
        if isinstance(item, (bool, int, float)):
            return item
    except Exception:
        pass
    return _scrub_str(str(obj), secrets)


def _scrub_str(value: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if value == secret:
            return REDACTED
        if len(secret) >= 8 and secret in value:  # a key embedded in a URL or command line
            value = value.replace(secret, REDACTED)
    return value


def scrub_files(paths: Iterable[Path]) -> None:
    """Rewrite each text file that holds a configured key (Hydra's `.hydra/*.yaml` and
    `multirun.yaml` copy the command line as typed)."""
    found = _values(None)
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, ValueError):
            continue
        if _scrub_str(text, found) != text:
            atomic_write(path, _scrub_str(text, found).encode("utf-8"))


def scrub_argv(argv: list[str], secrets: Iterable[str] | None = None) -> list[str]:
    """Command-line arguments with secrets masked (`+x.api_key=...` overrides, the key itself)."""
    found = _values(secrets)
    out = []
    for arg in argv:
        name, sep, value = arg.partition("=")
        if sep and value and _is_secret_key(name):
            arg = f"{name}={REDACTED}"
        out.append(_scrub_str(arg, found))
    return out


@contextlib.contextmanager
def argv_scrubbed() -> Iterator[None]:
    """wandb copies sys.argv into the run metadata: hide secrets while `wandb.init` reads it."""
    original = sys.argv
    cleaned = scrub_argv(list(original))
    if cleaned == original:
        yield
        return
    sys.argv = cleaned
    try:
        yield
    finally:
        sys.argv = original
