"""The W&B client every run of this package goes through: the training logger and the report run.

It decides the mode before `wandb.init`, so nothing can prompt or hang, and starts the run:

* `resolve_mode`: `auto` honours WANDB_MODE, then goes online only when W&B already has credentials
  (so wandb's login prompt is never reached, TTY or not) and a short HTTP probe finds the server;
  otherwise offline, with the reason logged;
* `open_run`: `wandb.init` with the command line scrubbed of secrets; an online init that fails (a
  slow server is bounded by `init_timeout`) is retried offline and the error handed back for the
  caller to report;
* `run_info`: mode, run id, run folder and the `wandb sync` command of an offline run.

`wandb` is imported only once a run starts (`import_wandb`, and `resolve_mode` asking wandb for
the server and credentials), so importing this module stays cheap.
"""

from __future__ import annotations

import logging
import os
import shlex
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from resnet_exp.errors import UserError
from resnet_exp.tracking.facts import LOGGER_MODES
from resnet_exp.tracking.wandb_secrets import argv_scrubbed

log = logging.getLogger("resnet_exp")

# wandb's historical spellings, accepted from WANDB_MODE.
_MODE_ALIASES = {"dryrun": "offline", "run": "online"}

# Bound on the HTTP reachability probe before an online init (DNS included: it runs in a thread).
_MAX_PROBE_S = 5.0


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
        import wandb
    except ImportError as exc:
        raise RuntimeError(
            f"the wandb package cannot be imported ({exc}); install it or use logger=none"
        ) from exc
    return wandb


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
    settings = wandb.Settings(init_timeout=init_timeout, quiet=True)
    with argv_scrubbed():
        return wandb.init(mode=mode, settings=settings, **kwargs)


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
        from wandb.sdk import wandb_setup

        url = wandb_setup.singleton().settings.base_url  # does not start the service
    except Exception:
        url = None
    return url or os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"


def _credentials_status(base_url: str) -> tuple[bool, str]:
    """Whether W&B has credentials for `base_url`, found the way wandb does it, never prompting.

    Looks at WANDB_API_KEY / WANDB_IDENTITY_TOKEN_FILE, the netrc file and wandb's settings
    files. Returns (found, reason) where reason explains a negative answer.
    """
    try:
        from wandb.sdk.lib import wbauth
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
    if auth is None:
        return False, "no W&B API key is configured (WANDB_API_KEY, netrc or `wandb login`)"
    return True, ""


def _credentials_status_fallback(base_url: str) -> tuple[bool, str]:
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True, ""
    try:
        import netrc

        host = urlsplit(base_url).hostname or ""
        if netrc.netrc(os.environ.get("NETRC")).authenticators(host):
            return True, ""
    except Exception:
        pass
    return False, "no W&B API key is configured (WANDB_API_KEY, netrc or `wandb login`)"


def _probe_server(base_url: str, timeout: float) -> str | None:
    """Return None if the W&B server answers HTTP within `timeout`, else why not.

    Run before an online `wandb.init` because a failed online init is expensive in wandb 0.31:
    besides `init_timeout`, the half-created online stream stays in wandb-core and delays process
    exit by 10-20 s. A refused connection or failed DNS lookup is known in milliseconds, a
    black-holed or mute server after `timeout`. Uses urllib, so HTTP(S)_PROXY/NO_PROXY apply as
    they do for wandb-core. Sends no credentials. Only a definite failure counts: a TLS problem
    (e.g. a private CA that urllib does not trust) is left for wandb to judge.
    """
    import ssl
    import urllib.error
    import urllib.request

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
    if not result:
        return f"no answer within {timeout:.0f} s"
    return result[0]


def _disable_wandb_analytics() -> None:
    """Stop wandb's own usage telemetry (OpenTelemetry) for this process when we log offline.

    wandb 0.31 builds that exporter from the *global* settings, which do not know that
    `wandb.init(mode="offline")` was asked for, and at process exit it POSTs to the server with a
    10 s timeout (connect and read): with a black-holed or mute server every offline run would
    delay exit by 10-20 s. wandb skips it when WANDB_MODE=offline; this does the same for an
    offline mode chosen here.
    """
    try:
        from wandb.analytics.opentelemetry import opentelemetry_proxy

        opentelemetry_proxy.disable()
    except Exception:  # moved/removed in another wandb release: nothing to disable
        log.debug("could not disable wandb analytics", exc_info=True)
