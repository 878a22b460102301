"""Find and read back the W&B runs a test's CLI run left offline (``WANDB_MODE=offline``): the
files under a folder, decoded by the product's own reader of one run file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from resnet_exp.tracking.wandb_reader import read_run_file


def find_run_files(path: str | Path) -> list[Path]:
    """All `run-*.wandb` files for `path` (a `.wandb` file, a W&B run folder, a `wandb/` folder or
    the folder that holds `wandb/`), oldest first."""
    path = Path(path)
    if path.is_file():
        return [path]
    patterns = ("run-*.wandb", "*run-*/run-*.wandb", "wandb/*run-*/run-*.wandb")
    found = {p for pattern in patterns for p in path.glob(pattern) if p.is_file()}
    # Folder names start with the start time (run-YYYYmmdd_HHMMSS-id), so name order is time order.
    return sorted(found, key=lambda p: (p.parent.name.removeprefix("offline-"), p.stat().st_mtime))


def read_offline_run(path: str | Path, include_internal: bool = False) -> dict[str, Any]:
    """The most recent W&B run under `path` (`find_run_files`) in plain Python: `run_id, project,
    entity, name, group, job_type, tags, notes, config`, `history` (one dict per `log()` call),
    `summary`, `exit_code` (None if it never finished), `path`; wandb's own `_*` keys only with
    `include_internal`."""
    files = find_run_files(path)
    if not files:
        raise FileNotFoundError(f"no W&B run file (run-*.wandb) under {path}")
    # wandb points latest-run at the run it created last (the offline one after a fallback).
    latest = Path(path) / "wandb" / "latest-run"
    if latest.is_dir():
        preferred = [f for f in files if f.parent.resolve() == latest.resolve()]
        if preferred:
            return read_run_file(preferred[-1], include_internal)
    return read_run_file(files[-1], include_internal)


def read_offline_runs(path: str | Path, include_internal: bool = False) -> list[dict[str, Any]]:
    """Decode every W&B run under `path`, oldest first."""
    return [read_run_file(f, include_internal) for f in find_run_files(path)]
