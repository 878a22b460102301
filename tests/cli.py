"""Run the installed command line the way a user does, in a scratch directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FAULTS = Path(__file__).resolve().parent / "faults"


def fault_env(**faults: str) -> dict[str, str]:
    """Environment that makes a CLI subprocess load tests/faults/sitecustomize.py, which kills it at
    the moment named (``kill_at="step:5"``, ``kill_job="seed=2"``; see that module)."""
    path = os.pathsep.join(p for p in (str(FAULTS), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path} | {
        f"RESNET_EXP_FAULT_{name.upper()}": value for name, value in faults.items()
    }


def cli_env(cwd: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI run in the tests: W&B offline, its files under ``cwd``."""
    full_env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(cwd),
        "WANDB_CONFIG_DIR": str(cwd / ".wandb-config"),
        "WANDB_CACHE_DIR": str(cwd / ".wandb-cache"),
        "HYDRA_FULL_ERROR": "0",
        "PYTHONUNBUFFERED": "1",
    }
    full_env.pop("WANDB_API_KEY", None)
    # A W&B run made inside the test process sets WANDB_SERVICE there; a child that inherited it
    # would attach to that process's W&B service instead of its own, as no user's run does.
    full_env.pop("WANDB_SERVICE", None)
    full_env.update(env or {})
    return full_env


def run_cli(
    *args: str,
    cwd: Path,
    module: str = "resnet_exp",
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """``python -m <module> <args>`` with W&B offline in ``cwd`` and a bounded wall time."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=cli_env(cwd, env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(
    *args: str, cwd: Path, module: str = "resnet_exp", env: dict[str, str] | None = None
) -> subprocess.Popen:
    """Like :func:`run_cli`, but returns the running process (to signal it mid-run)."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=cli_env(cwd, env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # the signals a test sends act as in a terminal, even when the tests run as a background job
        # (which ignores SIGINT) or under nohup (which ignores SIGHUP)
        preexec_fn=_terminal_signals,
    )


def refused_in_process(
    *args: str, cwd: Path, monkeypatch: Any, capsys: Any
) -> subprocess.CompletedProcess:
    """``python -m resnet_exp <args>`` in this process, for a command the entry point refuses
    before Hydra starts (the preflight composes and validates every job): the same code path as
    :func:`run_cli` without a new interpreter (a refused command's process cost about 0.7 s of CPU,
    this about 0.25 s). A command that gets as far as starting Hydra fails the test instead of
    training here."""
    import signal

    from resnet_exp import app
    from resnet_exp.hydra_glue import sweep_failures

    def started() -> None:
        raise AssertionError(f"not refused before Hydra started: {' '.join(args)}")

    monkeypatch.setattr(app, "main", started)
    monkeypatch.setattr(sys, "argv", ["resnet_exp", *args])
    monkeypatch.chdir(cwd)
    monkeypatch.delenv(sweep_failures.PARENT_ENV, raising=False)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    capsys.readouterr()
    code: Any = 0
    try:
        app.entry()
    except SystemExit as ended:
        code = ended.code
    finally:
        for signum, handler in handlers.items():  # the entry point's start-up handlers
            signal.signal(signum, handler)
    out = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code or 0, out.out, out.err)


def _terminal_signals() -> None:
    import signal

    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


# SPEC §5: what every epoch records (CIFAR-family nets have three stages).
SPEC_EPOCH_KEYS = frozenset(
    {
        "epoch",
        "train/loss",
        "train/err",
        "val/err",
        "test/err",
        "lr",
        "time/epoch_s",
        "throughput/img_s",
        "grad_norm/stem",
        "grad_norm/stage1",
        "grad_norm/stage2",
        "grad_norm/stage3",
        "grad_norm/head",
    }
)
