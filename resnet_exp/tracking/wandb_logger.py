"""Weights & Biases logging that can never stop or stall training (SPEC §7).

`WandbLogger` wraps `wandb.init/log/finish` with three guarantees the training loop relies on:

* it never prompts: the mode is resolved *before* `wandb.init`; an online run is only attempted
  when W&B already has credentials, so wandb's login prompt is never reached, TTY or not;
* it never hangs: an unreachable or mute server is caught by a short HTTP probe, a slow one is
  bounded by `init_timeout`; either way the run goes offline and `wandb sync <dir>` is logged;
* it never raises: a wandb exception is logged once as a warning and the logger becomes a no-op.

`wandb` is imported lazily in `start()`, so `logger=none` and `import resnet_exp.tracking` stay
cheap. `NullLogger` is the same interface doing nothing.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import secrets
import shlex
import string
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import urlsplit

from resnet_exp.errors import UserError
from resnet_exp.tracking.facts import LOGGER_MODES, WANDB_INIT_TIMEOUT_S, WANDB_PROJECT

log = logging.getLogger("resnet_exp")

# wandb's historical spellings, accepted from WANDB_MODE.
_MODE_ALIASES = {"dryrun": "offline", "run": "online"}

REDACTED = "***"
SECRET_KEY_MARKERS = ("api_key", "apikey", "token", "password", "passwd", "secret")

# Bound on the HTTP reachability probe before an online init (DNS included: it runs in a thread).
_MAX_PROBE_S = 5.0
_CLOSE_AFTER_ERROR_S = 10.0  # bound on finishing a run that already misbehaved.
_FLUSH_WAIT_S = 10.0  # bound on waiting for wandb-core to write the run file after finish()
_MAX_TAG_LEN = 64  # W&B rejects longer tags.


def new_run_id() -> str:
    """A fresh W&B run id (8 lowercase letters and digits, like wandb's own), chosen before the run
    starts so the run record holds it even if the process dies during `wandb.init`."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


def _disabled_info() -> dict[str, Any]:
    return {"mode": "disabled", "run_id": None, "dir": None, "sync": None}


class NullLogger:
    """`logger=none`: the tracker interface doing nothing (metrics.jsonl is still written).

    Takes (and ignores) the keyword settings of `WandbLogger`, since `conf/logger/none.yaml`
    shares the logger schema: a preset that sets `logger.tags` works with `logger=none` too.
    """

    def __init__(self, **settings: Any) -> None:
        """Accept the logger keys of the config (mode, project, tags, ...) and ignore them."""

    def start(
        self,
        run_dir: Path,
        config: dict,
        name: str,
        group: str,
        tags: list[str],
        job_type: str | None = None,
        run_id: str | None = None,
    ) -> None:
        """Do nothing."""

    def log(self, metrics: dict, step: int) -> None:
        """Do nothing."""

    def catch_up(self, rows: list[dict]) -> None:
        """Do nothing."""

    def set_summary(self, values: dict) -> None:
        """Do nothing."""

    def finish(self, status: str) -> None:
        """Do nothing."""

    def info(self) -> dict[str, Any]:
        """Same shape as `WandbLogger.info()`, saying W&B was disabled."""
        return _disabled_info()


# -- config cleaning ------------------------------------------------------------------------------


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(marker in lowered for marker in SECRET_KEY_MARKERS)


def _env_secrets() -> tuple[str, ...]:
    """Secret values that must never reach W&B files even if they appear under an innocent key."""
    key = os.environ.get("WANDB_API_KEY", "")
    return (key,) if key else ()


def _to_container(obj: Any) -> Any:
    """Resolve an OmegaConf node into plain containers (wandb rejects a raw DictConfig)."""
    if type(obj).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        if OmegaConf.is_config(obj):
            return OmegaConf.to_container(obj, resolve=True, throw_on_missing=False)
    return obj


def scrub_secrets(obj: Any, secrets: Iterable[str] | None = None) -> Any:
    """Return `obj` as plain JSON-like containers with secrets replaced by '***'.

    A value is redacted when its key looks like a secret (contains api_key, token, password or
    secret, any case) or when it equals (or, for long secrets, contains) one of `secrets`
    (default: the value of WANDB_API_KEY). Non-JSON leaves (paths, enums, objects) become strings
    so wandb never has to guess how to serialise them.
    """
    found = tuple(s for s in (_env_secrets() if secrets is None else secrets) if s)
    return _scrub(obj, found)


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


def scrub_argv(argv: list[str], secrets: Iterable[str] | None = None) -> list[str]:
    """Command-line arguments with secrets masked (`+x.api_key=...` overrides, the key itself)."""
    found = tuple(s for s in (_env_secrets() if secrets is None else secrets) if s)
    out = []
    for arg in argv:
        name, sep, value = arg.partition("=")
        if sep and value and _is_secret_key(name):
            arg = f"{name}={REDACTED}"
        out.append(_scrub_str(arg, found))
    return out


@contextlib.contextmanager
def _argv_scrubbed() -> Iterator[None]:
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


def _clean_tags(tags: Iterable[Any]) -> list[str]:
    out: list[str] = []
    for tag in tags:
        text = str(tag).strip()[:_MAX_TAG_LEN]
        if text and text not in out:
            out.append(text)
    return out


# -- mode resolution ------------------------------------------------------------------------------


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


def _run_bounded(fn: Any, timeout: float) -> bool:
    """Run `fn()` in a daemon thread; True if it returned in time (exceptions count as returned)."""

    def target() -> None:
        try:
            fn()
        except Exception:
            log.debug("ignored error while closing a failed W&B run", exc_info=True)

    thread = threading.Thread(target=target, name="resnet_exp-wandb-close", daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive()


def _emit(message: str) -> None:
    """Log at INFO; also print when nothing is listening, so the sync command is never lost."""
    log.info(message)
    if not log.hasHandlers() or not log.isEnabledFor(logging.INFO):
        print(message, file=sys.stderr)


class WandbLogger:
    """Log one training run to W&B (see the module docstring for the guarantees).

    Args:
        mode: `auto` (online when credentials are configured, else offline; a WANDB_MODE env var
            is honoured), `online` (falls back to offline, with a warning, when there is no key or
            no server), `offline`, or `disabled` (nothing written, wandb not imported).
        project, entity, group, tags, notes: passed to `wandb.init`; `group`/`tags` are merged
            with those given to `start()` (this `group` wins when set).
        dir: parent of the `wandb/` folder; None puts it inside the run directory.
        init_timeout: seconds an online `wandb.init` may take before falling back to offline.
    """

    def __init__(
        self,
        mode: str = "auto",
        project: str = WANDB_PROJECT,
        entity: str | None = None,
        dir: str | Path | None = None,
        init_timeout: float = WANDB_INIT_TIMEOUT_S,
        group: str | None = None,
        tags: Iterable[str] = (),
        notes: str | None = None,
    ) -> None:
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
        self.mode = mode
        self.project = project
        self.entity = entity
        self.dir = dir
        self.init_timeout = init_timeout
        self.group = group
        self.tags = _clean_tags(tags or ())
        self.notes = notes
        self._run: Any = None
        self._run_file: Path | None = None
        self._info = _disabled_info()
        self._failed = False
        self._next_step = 0  # first step the W&B run does not hold yet (a resumed run has some)

    # -- interface ------------------------------------------------------------------------------

    def start(
        self,
        run_dir: Path,
        config: dict,
        name: str,
        group: str,
        tags: list[str],
        job_type: str | None = None,
        run_id: str | None = None,
    ) -> None:
        """Start a W&B run whose files live under `<dir or run_dir>/wandb/`; `job_type` (the
        configuration without the seed) makes replicate runs group together.

        With `run_id`, the run with that id is continued (`resume="allow"`), online or offline:
        a resumed training run logs its later epochs into the same W&B run.
        """
        if self._run is not None:  # start() twice without finish(): close the previous run first
            self.finish("failed")
        self._run = None
        self._run_file = None
        self._info = _disabled_info()
        self._failed = False
        try:
            self._start(Path(run_dir), config, name, group, list(tags or ()), job_type, run_id)
        except Exception as exc:
            self._fail("start", exc)

    def log(self, metrics: dict, step: int) -> None:
        """Append one history row at `step` (the training step; rows sharing a step merge)."""
        if self._run is None:
            return
        try:
            self._run.log(dict(metrics), step=int(step))
        except Exception as exc:
            self._fail("log", exc)

    def catch_up(self, rows: list[dict]) -> None:
        """Log the rows of the run record (metrics.jsonl, in order) that this W&B run lacks.

        A resumed run's W&B history must continue where its checkpoint ends. An earlier attempt
        may have died before W&B had its last rows: wandb-core only writes an offline run file
        when the run closes (a SIGKILL leaves just its header), and a kill between a checkpoint and
        the next `log()` skips a row. metrics.jsonl is the record, so W&B is filled in from it.
        """
        for row in rows:
            if "step" in row and int(row["step"]) >= self._next_step:
                self.log(row, step=int(row["step"]))

    def set_summary(self, values: dict) -> None:
        """Write final/best values into the run summary."""
        if self._run is None:
            return
        try:
            summary = self._run.summary
            for key, value in scrub_secrets(values).items():
                summary[key] = value
        except Exception as exc:
            self._fail("set_summary", exc)

    def finish(self, status: str) -> None:
        """Record `status` in the summary and close the run (exit code 0 only for `completed`)."""
        run, self._run = self._run, None
        if run is None:
            return
        try:
            run.summary["status"] = status
            run.finish(exit_code=0 if status == "completed" else 1)
        except Exception as exc:
            self._fail("finish", exc, run=None)  # do not try to finish it a second time
            return
        self._wait_for_run_file()
        if self._info["sync"]:
            _emit(f"W&B run saved offline; upload it with: {self._info['sync']}")

    def info(self) -> dict[str, Any]:
        """Mode actually used, run id, wandb run directory, `wandb sync` command (or None)."""
        return dict(self._info)

    # -- internals ------------------------------------------------------------------------------

    def _start(
        self,
        run_dir: Path,
        config: dict,
        name: str,
        group: str,
        tags: list[str],
        job_type: str | None = None,
        run_id: str | None = None,
    ) -> None:
        self._next_step = 0
        if self._requested_mode() == "disabled":
            source = "WANDB_MODE" if self.mode == "auto" else "logger.mode"
            log.info("W&B logging is disabled (%s=disabled).", source)
            return
        try:
            import wandb  # lazy: costs ~1 s and is not needed for logger=none / disabled
        except ImportError as exc:
            raise RuntimeError(
                f"the wandb package cannot be imported ({exc}); install it or use logger=none"
            ) from exc

        mode, why = self._resolve_mode()
        if mode == "disabled":
            log.info("W&B logging is disabled (%s).", why)
            return

        parent = Path(self.dir).expanduser() if self.dir else run_dir
        parent = parent.absolute()
        parent.mkdir(parents=True, exist_ok=True)  # wandb warns about a missing git root otherwise
        init_kwargs: dict[str, Any] = {
            "project": self.project,
            "entity": self.entity,
            "dir": str(parent),
            "config": scrub_secrets(config or {}),
            "name": name or None,
            "group": self.group or group or None,
            "tags": _clean_tags([*self.tags, *tags]),
            "notes": self.notes,
            "job_type": job_type or None,
            # Hydra multirun: each job its own run (the default logs into the first job's run).
            "reinit": "finish_previous",
        }
        if run_id:  # one W&B run per training run across kills, requeues and sweep re-runs
            init_kwargs.update(id=run_id, resume="allow")

        run = None
        if mode == "online":
            try:
                run = self._init(wandb, "online", init_kwargs)
            except Exception as exc:
                first_line = (str(exc).strip().splitlines() or [""])[0]
                log.warning(
                    "W&B could not start an online run (%s: %s); logging offline instead.",
                    type(exc).__name__,
                    first_line,
                )
                mode = "offline"
        if run is None:
            _disable_wandb_analytics()
            run = self._init(wandb, "offline", init_kwargs)

        self._run = run
        self._run_file = Path(run.settings.sync_file)
        self._next_step = self._history_end(run, offline=mode == "offline") if run_id else 0
        sync_dir = str(run.settings.sync_dir)
        offline = mode == "offline"
        self._info = {
            "mode": mode,
            "run_id": run.id,
            "dir": sync_dir,
            "sync": f"wandb sync {shlex.quote(sync_dir)}" if offline else None,
        }
        try:  # plot against epochs; cosmetic, so never worth failing over
            run.define_metric("epoch")
            run.define_metric("step")
            for key in ("train_step/loss", "train_step/err"):  # per-step rows: against the step
                run.define_metric(key, step_metric="step")
            run.define_metric("*", step_metric="epoch")
        except Exception:
            log.debug("define_metric failed", exc_info=True)
        where = run.url if not offline and getattr(run, "url", None) else sync_dir
        log.info("W&B run %s (%s): %s", run.id, mode, where)

    def _history_end(self, run: Any, offline: bool) -> int:
        """First step the resumed run lacks: the server says so online (`starting_step`); offline,
        the earlier attempts' files in the same wandb folder tell (those that were written)."""
        if not offline:
            return int(getattr(run, "starting_step", 0) or 0)
        from resnet_exp.tracking.wandb_reader import read_run_file

        end = 0
        assert self._run_file is not None
        for path in self._run_file.parent.parent.glob(f"*run-*-{run.id}/run-{run.id}.wandb"):
            if path == self._run_file:
                continue
            try:
                history = read_run_file(path, include_internal=True)["history"]
            except Exception:  # a damaged file: whatever it holds is not counted
                log.debug("could not read %s", path, exc_info=True)
                continue
            steps = [int(row["_step"]) for row in history if "_step" in row]
            end = max([end, *(step + 1 for step in steps)])
        return end

    def _wait_for_run_file(self) -> None:
        """Return once the run file is complete on disk (bounded), so it can be read or synced.

        `run.finish()` returns before wandb-core closes the stream, and wandb 0.31 writes the
        buffered transaction log only then: reading it straight away can find just its header.
        """
        if self._run_file is None:
            return
        from resnet_exp.tracking.wandb_reader import is_complete

        deadline = time.monotonic() + _FLUSH_WAIT_S
        while not is_complete(self._run_file):
            if time.monotonic() > deadline:
                log.debug("W&B run file %s incomplete after %s s", self._run_file, _FLUSH_WAIT_S)
                return
            time.sleep(0.02)

    def _init(self, wandb: Any, mode: str, kwargs: dict[str, Any]) -> Any:
        settings = wandb.Settings(init_timeout=self.init_timeout, quiet=True)
        with _argv_scrubbed():
            return wandb.init(mode=mode, settings=settings, **kwargs)

    def _requested_mode(self) -> str:
        """`mode`, or for `auto` the WANDB_MODE env var when it names a mode."""
        if self.mode != "auto":
            return self.mode
        env = os.environ.get("WANDB_MODE", "").strip().lower()
        env = _MODE_ALIASES.get(env, env)
        return env if env in LOGGER_MODES else "auto"

    def _resolve_mode(self) -> tuple[str, str]:
        """Pick online/offline/disabled before wandb.init, so nothing can prompt or hang."""
        requested = self._requested_mode()
        if requested in ("offline", "disabled"):
            source = "WANDB_MODE" if self.mode == "auto" else "logger.mode"
            return requested, f"{source}={requested}"
        base_url = _wandb_base_url()
        found, why_not = _credentials_status(base_url)
        if not found:
            if requested == "online":
                log.warning("W&B online mode requested but %s; logging offline instead.", why_not)
            else:
                log.info("W&B: %s; logging offline.", why_not)
            return "offline", why_not
        problem = _probe_server(base_url, min(self.init_timeout, _MAX_PROBE_S))
        if problem is not None:
            log.warning(
                "W&B server %s is unreachable (%s); logging offline instead.", base_url, problem
            )
            return "offline", f"server unreachable: {problem}"
        return "online", "credentials configured"

    def _fail(self, where: str, exc: Exception, run: Any = ...) -> None:
        """Turn the logger into a no-op after a wandb error; warn once, never raise."""
        if run is ...:
            run = self._run
        self._run = None
        if not self._failed:
            self._failed = True
            log.warning(
                "W&B logging failed in %s() (%s: %s); W&B is off for the rest of this run, "
                "training and metrics.jsonl are unaffected.",
                where,
                type(exc).__name__,
                exc,
            )
        # Best effort to close the run so the next one starts clean; bounded.
        if run is None:
            return
        if _run_bounded(lambda: run.finish(exit_code=1), _CLOSE_AFTER_ERROR_S):
            self._wait_for_run_file()
        else:
            log.debug("W&B run did not close within %s s", _CLOSE_AFTER_ERROR_S)
