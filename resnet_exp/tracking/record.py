"""The local run record: ``metrics.jsonl`` and ``summary.json``, written so a kill never tears them.

This is the source of truth for a run; W&B is a mirror of it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write_bytes(
    path: Path, data: bytes, before_replace: Callable[[], None] | None = None
) -> None:
    """Write to a temp file in the same folder, fsync, then rename over ``path``.

    ``before_replace`` runs once the new bytes are safely on disk, just before the rename (the
    checkpoint code uses it to keep the previous file as ``last.prev.pt``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); harmless where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _json_safe(value: Any) -> Any:
    """NaN/inf are not JSON; a diverged run's loss is recorded as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def keep_rows(rows: list[dict], last_epoch: int, last_step: int | None) -> list[dict]:
    """Epoch rows (they carry "epoch") up to ``last_epoch``; per-step rows up to ``last_step``."""
    if last_step is None:
        epochs = [r for r in rows if "epoch" in r and r["epoch"] <= last_epoch]
        last_step = max((int(r.get("step") or 0) for r in epochs), default=0)
    return [
        r
        for r in rows
        if (r["epoch"] <= last_epoch if "epoch" in r else int(r.get("step") or 0) <= last_step)
    ]


class RunRecord:
    """Appends one JSON line per epoch and rewrites the summary atomically."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.summary_path = self.run_dir / "summary.json"
        self.checkpoint_dir = self.run_dir / "checkpoints"

    def read_metrics(self) -> list[dict]:
        """Rows written so far; a torn last line (killed mid-write) is ignored."""
        if not self.metrics_path.exists():
            return []
        rows = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return rows

    def truncate_metrics(self, last_epoch: int, last_step: int | None = None) -> list[dict]:
        """Keep epoch rows up to ``last_epoch`` and per-step rows up to ``last_step`` (default: the
        last kept epoch's step), so a resumed run neither repeats nor skips a row. Returns the
        epoch rows."""
        kept = keep_rows(self.read_metrics(), last_epoch, last_step)
        payload = "".join(json.dumps(r) + "\n" for r in kept).encode()
        atomic_write_bytes(self.metrics_path, payload)
        return [r for r in kept if "epoch" in r]

    def append_metrics(self, row: dict) -> None:
        line = (json.dumps(_json_safe(row)) + "\n").encode()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.metrics_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write call: the line lands whole or not at all
            os.fsync(fd)
        finally:
            os.close(fd)

    def read_summary(self) -> dict:
        if not self.summary_path.exists():
            return {}
        return json.loads(self.summary_path.read_text())

    def write_summary(self, summary: dict) -> None:
        text = json.dumps(_json_safe(summary), indent=2, sort_keys=False) + "\n"
        atomic_write_bytes(self.summary_path, text.encode())
