"""The W&B client every run of this package goes through: the training logger and the report run.

`resolve_mode` decides the mode before `wandb.init`, so nothing can prompt or hang (`auto`:
WANDB_MODE, else online only with credentials and a server that answers a short probe, else
offline with the reason logged); `open_run` retries a failed online init offline. `wandb` is
imported only once a run starts, so importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import logging
import netrc
import os
import shlex
import ssl
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from resnet_exp.errors import UserError
from resnet_exp.tracking.facts import LOGGER_MODES
from resnet_exp.tracking.wandb_secrets import argv_scrubbed, scrub_secrets

log = logging.getLogger("resnet_exp")

# wandb's historical spellings, accepted from WANDB_MODE.
_MODE_ALIASES = {"dryrun": "offline", "run": "online"}

# Bound on the HTTP reachability probe before an online init (DNS included: it runs in a thread).
_MAX_PROBE_S = 5.0
_NO_KEY = "no W&B API key is configured (WANDB_API_KEY, netrc or `wandb login`)"


def checked_settings(mode: Any, init_timeout: Any) -> tuple[str, float]:
    """`mode` lower-cased and `init_timeout` as seconds, or a `UserError` naming the bad value."""
    mode = str(mode).lower()
    if mode not in LOGGER_MODES:
        raise UserError(f"logger.mode={mode!r} is not one of {', '.join(LOGGER_MODES)}.")
    try:
        init_timeout = float(init_timeout)
    except (TypeError, ValueError):
        raise UserError(
            f"logger.init_timeout={init_timeout!r} is not a number of seconds."
        ) from None
    if init_timeout <= 0:
        raise UserError(f"logger.init_timeout must be positive, got {init_timeout}.")
    return mode, init_timeout


def requested_mode(mode: str) -> str:
    """`mode`, or for `auto` the WANDB_MODE env var when it names a mode."""
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    env = _MODE_ALIASES.get(env, env)
    return env if env in LOGGER_MODES else "auto"


def mode_source(mode: str) -> str:
    """Where a requested offline/disabled mode came from, for log lines."""
    return "WANDB_MODE" if mode == "auto" else "logger.mode"


def resolve_mode(mode: str, init_timeout: float) -> tuple[str, str]:
    """(online/offline/disabled, why), picked before wandb.init so nothing can prompt or hang."""
    requested = requested_mode(mode)
    if requested in ("offline", "disabled"):
        return requested, f"{mode_source(mode)}={requested}"
    base_url = _wandb_base_url()
    found, why_not = _credentials_status(base_url)
    if not found:
        if requested == "online":
            log.warning("W&B online mode requested but %s; logging offline instead.", why_not)
        else:
            log.info("W&B: %s; logging offline.", why_not)
        return "offline", why_not
    problem = _probe_server(base_url, min(init_timeout, _MAX_PROBE_S))
    if problem is not None:
        log.warning(
            "W&B server %s is unreachable (%s); logging offline instead.", base_url, problem
        )
        return "offline", f"server unreachable: {problem}"
    return "online", "credentials configured"


def import_wandb() -> Any:
    """The wandb module (costs ~1 s, so only once a run really starts)."""
    try:
        import wandb  # optional and slow: only once a run starts
    except ImportError as exc:
        raise RuntimeError(
            f"the wandb package cannot be imported ({exc}); install it or use logger=none"
        ) from exc
    return wandb


def new_run_id(basis: str) -> str:
    """A W&B run id (16 hex digits), the same for the same `basis` (a job's folder and identity; a
    report's sweep); chosen before the run starts, so the record holds it even if the process
    dies during `wandb.init`."""
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class OpenedRun:
    """A started W&B run, the mode it runs in, and why an online start fell back (else None)."""

    run: Any
    mode: str
    online_error: Exception | None = None


def open_run(wandb: Any, mode: str, init_timeout: float, init_kwargs: dict[str, Any]) -> OpenedRun:
    """`wandb.init` in `mode` (online or offline); a failed online init is retried offline."""
    online_error = None
    if mode == "online":
        try:
            return OpenedRun(_init(wandb, "online", init_timeout, init_kwargs), "online")
        except Exception as exc:
            online_error = exc
    _disable_wandb_analytics()
    return OpenedRun(_init(wandb, "offline", init_timeout, init_kwargs), "offline", online_error)


def _init(wandb: Any, mode: str, init_timeout: float, kwargs: dict[str, Any]) -> Any:
    # silent: wandb's own lines are ours to say (the one `wandb sync` hint, WandbLogger.finish)
    settings = wandb.Settings(init_timeout=init_timeout, silent=True)
    with argv_scrubbed():  # name, notes, tags, group and config too: a secret never leaves
        return wandb.init(mode=mode, settings=settings, **scrub_secrets(kwargs))


def run_info(run: Any, mode: str) -> dict[str, Any]:
    """Mode used, run id, wandb run folder and (offline) the `wandb sync` command."""
    sync_dir = str(run.settings.sync_dir)
    return {
        "mode": mode,
        "run_id": run.id,
        "dir": sync_dir,
        "sync": f"wandb sync {shlex.quote(sync_dir)}" if mode == "offline" else None,
    }


def disabled_info() -> dict[str, Any]:
    """`run_info`'s shape for no run at all."""
    return {"mode": "disabled", "run_id": None, "dir": None, "sync": None}


def _wandb_base_url() -> str:
    """The server wandb would talk to (WANDB_BASE_URL, `wandb login --host`, or its default)."""
    try:
        from wandb.sdk import wandb_setup  # optional and slow: only once a run starts

        url = wandb_setup.singleton().settings.base_url  # does not start the service
    except Exception:
        url = None
    return url or os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"


def _credentials_status(base_url: str) -> tuple[bool, str]:
    """(found, why not): whether W&B has credentials for `base_url` (WANDB_API_KEY, netrc, wandb's
    settings files), found the way wandb does it, never prompting."""
    try:
        from wandb.sdk.lib import wbauth  # optional and slow: only once a run starts
    except ImportError:  # very old/new wandb: fall back to the documented sources
        return _credentials_status_fallback(base_url)
    try:
        auth = wbauth.authenticate_session(
            host=base_url, source="resnet_exp", prompt=False, update_session=False
        )
    except TypeError:  # signature changed in another wandb release
        return _credentials_status_fallback(base_url)
    except Exception as exc:  # e.g. AuthenticationError: malformed WANDB_API_KEY
        return False, f"the configured W&B credentials are invalid ({exc})"
    return (False, _NO_KEY) if auth is None else (True, "")


def _credentials_status_fallback(base_url: str) -> tuple[bool, str]:
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True, ""
    try:
        host = urlsplit(base_url).hostname or ""
        if netrc.netrc(os.environ.get("NETRC")).authenticators(host):
            return True, ""
    except Exception:
        pass
    return False, _NO_KEY


def _probe_server(base_url: str, timeout: float) -> str | None:
    """None if the W&B server answers HTTP within `timeout`, else why not. A failed online init
    costs wandb 0.31 `init_timeout` plus 10-20 s at exit, a refused or unresolved server is known
    here in milliseconds. urllib honours HTTP(S)_PROXY/NO_PROXY as wandb-core does; no credentials
    are sent; a TLS problem (a private CA urllib does not trust) is left for wandb to judge."""
    url = base_url.rstrip("/") + "/healthz"
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        return f"cannot parse the W&B server URL {base_url!r}"
    result: list[str | None] = []

    def request() -> None:
        try:
            with urllib.request.urlopen(url, timeout=timeout):  # noqa: S310 (scheme checked above)
                result.append(None)
        except urllib.error.HTTPError as exc:  # it answered; a 5xx means it cannot serve runs now
            result.append(f"HTTP {exc.code} from {url}" if exc.code >= 500 else None)
        except urllib.error.URLError as exc:
            reason = exc.reason
            inconclusive = isinstance(reason, ssl.SSLError)
            result.append(None if inconclusive else f"{type(reason).__name__}: {reason}")
        except ssl.SSLError:
            result.append(None)
        except Exception as exc:  # timeout while reading, connection reset, ...
            result.append(f"{type(exc).__name__}: {exc}")

    # A thread, because getaddrinfo() has no timeout of its own and a broken resolver can hang.
    thread = threading.Thread(target=request, name="resnet_exp-wandb-probe", daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return result[0] if result else f"no answer within {timeout:.0f} s"


def _disable_wandb_analytics() -> None:
    """Stop wandb's own telemetry when we log offline: wandb 0.31 builds it from the global
    settings, which miss `mode="offline"`, and at exit POSTs to the server (10-20 s per run
    against a mute server), as it would not under WANDB_MODE=offline."""
    try:
        from wandb.analytics.opentelemetry import opentelemetry_proxy  # optional: wandb's own

        opentelemetry_proxy.disable()
    except Exception:  # moved/removed in another wandb release: nothing to disable
        log.debug("could not disable wandb analytics", exc_info=True)
