"""Weights & Biases logging that can never stop or stall training (SPEC §7).

`WandbLogger` never prompts or hangs (`wandb_client`), never leaks a secret (`wandb_secrets`) and
never raises (a wandb exception is one warning, then the logger is a no-op); `NullLogger` is the
same interface doing nothing.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from resnet_exp.tracking import wandb_client
from resnet_exp.tracking.facts import WANDB_INIT_TIMEOUT_S, WANDB_PROJECT
from resnet_exp.tracking.record import COMPLETED, FAILED, STEP_ERR, STEP_LOSS
from resnet_exp.tracking.wandb_client import disabled_info
from resnet_exp.tracking.wandb_reader import is_complete, read_run_file
from resnet_exp.tracking.wandb_secrets import scrub_secrets

log = logging.getLogger("resnet_exp")

_CLOSE_AFTER_ERROR_S = 10.0  # bound on finishing a run that already misbehaved.
_FLUSH_WAIT_S = 10.0  # bound on waiting for wandb-core to write the run file after finish()
_MAX_TAG_LEN = 64  # W&B rejects longer tags.
# Per-step rows are plotted against the step, everything else against the epoch.
_STEP_METRICS = (STEP_LOSS, STEP_ERR)


class NullLogger:
    """`logger=none`: the tracker interface doing nothing (metrics.jsonl is still written). It
    takes and ignores `WandbLogger`'s settings (one logger schema: `logger.tags` works here too)."""

    def __init__(self, **settings: Any) -> None: ...

    def start(self, *args: Any, **kwargs: Any) -> None: ...

    def log(self, metrics: dict, step: int) -> None: ...

    def catch_up(self, rows: list[dict]) -> None: ...

    def set_summary(self, values: dict) -> None: ...

    def finish(self, status: str) -> None: ...

    def info(self) -> dict[str, Any]:
        """Same shape as `WandbLogger.info()`, saying W&B was disabled."""
        return disabled_info()


def _clean_tags(tags: Iterable[Any]) -> list[str]:
    out: list[str] = []
    for tag in tags:
        text = str(tag).strip()[:_MAX_TAG_LEN]
        if text and text not in out:
            out.append(text)
    return out


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


class WandbLogger:
    """Log one training run to W&B (see the module docstring for the guarantees).

    Arguments mirror ``conf/logger/wandb.yaml`` (each documented there); ``group``/``tags`` are
    merged with those given to ``start()`` (this ``group`` wins when set); ``dir=None`` puts
    ``wandb/`` inside the run directory.
    """

    def __init__(
        self, mode: str = "auto", project: str = WANDB_PROJECT, entity: str | None = None,
        dir: str | Path | None = None, init_timeout: float = WANDB_INIT_TIMEOUT_S,
        group: str | None = None, tags: Iterable[str] = (), notes: str | None = None,
    ) -> None:  # fmt: skip
        self.mode, self.init_timeout = wandb_client.checked_settings(mode, init_timeout)
        self.project, self.entity, self.dir, self.group = project, entity, dir, group
        self.tags = _clean_tags(tags or ())
        self.notes = notes
        self._run: Any = None
        self._run_file: Path | None = None
        self._info = disabled_info()
        self._failed = False
        self._next_step = 0  # first step the W&B run does not hold yet (a resumed run has some)

    def start(
        self, run_dir: Path, config: dict, name: str, group: str, tags: list[str],
        job_type: str | None = None, run_id: str | None = None,
    ) -> None:  # fmt: skip
        """Start a W&B run with its files under `<dir or run_dir>/wandb/`; `job_type` (the
        configuration without the seed) groups replicates; `run_id` continues that run
        (`resume="allow"`, online or offline), so a resumed run logs into the same W&B run."""
        if self._run is not None:  # start() twice without finish(): close the previous run first
            self.finish(FAILED)
        self._run, self._run_file, self._info, self._failed = None, None, disabled_info(), False
        run = {"config": config, "name": name, "group": group, "tags": list(tags or ())}
        try:
            self._start(Path(run_dir), {**run, "job_type": job_type}, run_id)
        except Exception as exc:
            self._fail("start", exc)

    def log(self, metrics: dict, step: int) -> None:
        """Append one history row at `step` (rows sharing a step merge); a step the W&B run
        already holds (a resumed run retrains the steps after its checkpoint) is skipped."""
        if self._run is None or int(step) < self._next_step:
            return
        try:
            self._run.log(dict(metrics), step=int(step))
        except Exception as exc:
            self._fail("log", exc)

    def catch_up(self, rows: list[dict]) -> None:
        """Log the rows of the run record (metrics.jsonl) this W&B run lacks: an earlier attempt
        may have died before W&B had them (wandb-core writes an offline file only when the run
        closes; a kill between a checkpoint and the next `log()` skips a row)."""
        for row in rows:
            if "step" in row:
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
            run.finish(exit_code=0 if status == COMPLETED else 1)
        except Exception as exc:
            self._fail("finish", exc, run=None)  # do not try to finish it a second time
            return
        self._wait_for_run_file()
        if self._info["sync"]:
            message = f"W&B run saved offline; upload it with: {self._info['sync']}"
            log.info(message)
            if not log.hasHandlers() or not log.isEnabledFor(logging.INFO):  # never lost
                print(message, file=sys.stderr)

    def info(self) -> dict[str, Any]:
        """Mode actually used, run id, wandb run directory, `wandb sync` command (or None)."""
        return dict(self._info)

    def _start(self, run_dir: Path, run: dict[str, Any], run_id: str | None) -> None:
        self._next_step = 0
        if wandb_client.requested_mode(self.mode) == "disabled":
            log.info("W&B logging is disabled (%s=disabled).", wandb_client.mode_source(self.mode))
            return
        wandb = wandb_client.import_wandb()  # lazy: not needed for logger=none / disabled
        mode, _why = wandb_client.resolve_mode(self.mode, self.init_timeout)
        kwargs = self._init_kwargs(run_dir, run, run_id)
        opened = wandb_client.open_run(wandb, mode, self.init_timeout, kwargs)
        if opened.online_error is not None:
            exc = opened.online_error
            log.warning(
                "W&B could not start an online run (%s: %s); logging offline instead.",
                type(exc).__name__,
                (str(exc).strip().splitlines() or [""])[0],
            )
        run = self._run = opened.run
        self._run_file = Path(run.settings.sync_file)
        offline = opened.mode == "offline"
        self._next_step = self._history_end(run, offline=offline) if run_id else 0
        self._info = wandb_client.run_info(run, opened.mode)
        _define_metrics(run)
        if not offline:  # offline, the one line is the `wandb sync` hint when the run ends
            log.info("W&B run %s (online): %s", run.id, getattr(run, "url", None) or run.id)

    def _init_kwargs(self, run_dir: Path, run: dict[str, Any], run_id: str | None) -> dict:
        """`wandb.init`'s arguments: this logger's settings merged with the run's (`start()`)."""
        parent = Path(self.dir).expanduser() if self.dir else run_dir
        parent = parent.absolute()
        parent.mkdir(parents=True, exist_ok=True)  # wandb warns about a missing git root otherwise
        kwargs: dict[str, Any] = {
            "project": self.project,
            "entity": self.entity,
            "dir": str(parent),
            "config": run["config"] or {},
            "name": run["name"] or None,
            "group": self.group or run["group"] or None,
            "tags": _clean_tags([*self.tags, *run["tags"]]),
            "notes": self.notes,
            "job_type": run["job_type"] or None,
            # Hydra multirun: each job its own run (the default logs into the first job's run).
            "reinit": "finish_previous",
        }
        if run_id:  # one W&B run per training run across kills, requeues and sweep re-runs
            kwargs.update(id=run_id, resume="allow")
        return kwargs

    def _history_end(self, run: Any, offline: bool) -> int:
        """First step the resumed run lacks: online the server's `starting_step`; offline, the
        earlier attempts' finished files. An unfinished one (its process was killed; its
        wandb-core may still write it) is set aside unread into `wandb/unfinished/` and its steps
        are logged again from metrics.jsonl."""
        if not offline:
            return int(getattr(run, "starting_step", 0) or 0)
        end = 0
        assert self._run_file is not None
        wandb_dir = self._run_file.parent.parent
        for path in wandb_dir.glob(f"*run-*-{run.id}/run-{run.id}.wandb"):
            if path == self._run_file:
                continue
            if not is_complete(path) and _set_aside(path.parent, wandb_dir / "unfinished"):
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
        """Return once the run file is complete on disk (bounded): `run.finish()` returns before
        wandb-core writes the buffered transaction log (wandb 0.31)."""
        if self._run_file is None:
            return
        deadline = time.monotonic() + _FLUSH_WAIT_S
        while not is_complete(self._run_file):
            if time.monotonic() > deadline:
                log.debug("W&B run file %s incomplete after %s s", self._run_file, _FLUSH_WAIT_S)
                return
            time.sleep(0.02)

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


def _set_aside(folder: Path, into: Path) -> bool:
    """Move a killed attempt's W&B run folder out of the way (kept, for a post-mortem); False
    when it cannot be moved (then its steps are counted as the file holds them now)."""
    try:
        into.mkdir(exist_ok=True)
        folder.rename(into / folder.name)
    except OSError as exc:
        log.debug("could not set %s aside: %s", folder, exc)
        return False
    log.info("W&B: set aside the unfinished run folder of a killed attempt: %s", into / folder.name)
    return True


def _define_metrics(run: Any) -> None:
    """Plot against epochs (per-step rows against the step); cosmetic, so never worth failing."""
    try:
        run.define_metric("epoch")
        run.define_metric("step")
        for key in _STEP_METRICS:
            run.define_metric(key, step_metric="step")
        run.define_metric("*", step_metric="epoch")
    except Exception:
        log.debug("define_metric failed", exc_info=True)
