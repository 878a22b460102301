"""The bytes of an existing run folder, taken before a (re)start, to put back if it fails.

Hydra rewrites ``.hydra/*.yaml`` and appends to the log before our code runs; a start that then
fails (any exception, a user error found after the data is read, Ctrl-C during start-up) must
leave the folder as it was. Checkpoints (``*.pt``) are neither copied nor touched: nothing writes
one before the run starts, and the damaged-checkpoint policy's renames are deliberate and logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from resnet_exp.atomic import atomic_write

#: Files up to this size are kept whole; a longer one (a huge log) is only cut back to its length.
KEEP_BYTES = 16 * 2**20
SKIPPED_DIRS = ("wandb",)  # W&B's own files: written only once the run has started


def _owned(path: Path, root: Path) -> bool:
    """Files the snapshot answers for: not checkpoints, not W&B's folder."""
    parts = path.relative_to(root).parts
    return path.suffix != ".pt" and parts[0] not in SKIPPED_DIRS


@dataclass
class FolderSnapshot:
    """What each file held (``bytes``) or how long it was (``int``), and the folders there were."""

    root: Path
    files: dict[Path, bytes | int] = field(default_factory=dict)
    dirs: set[Path] = field(default_factory=set)

    @classmethod
    def take(cls, root: Path) -> FolderSnapshot:
        snap = cls(root)
        for path in _walk(root):
            if path.is_dir():
                snap.dirs.add(path)
            elif path.is_file() and _owned(path, root):
                size = path.stat().st_size
                snap.files[path] = path.read_bytes() if size <= KEEP_BYTES else size
        return snap

    def restore(self) -> None:
        """Put every file back, remove the files and folders that were not there (never a .pt)."""
        for path, kept in self.files.items():
            if isinstance(kept, int):
                if path.is_file() and path.stat().st_size > kept:
                    with path.open("r+b") as handle:
                        handle.truncate(kept)
            elif not path.is_file() or path.read_bytes() != kept:
                atomic_write(path, kept)
        new = [p for p in _walk(self.root) if p not in self.files and p not in self.dirs]
        for path in sorted(new, key=lambda p: len(p.parts), reverse=True):  # files before folders
            if path.is_dir():
                if not any(path.iterdir()):
                    path.rmdir()
            elif _owned(path, self.root):
                path.unlink(missing_ok=True)


def _walk(root: Path) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(root):
        base = Path(folder)
        dirs[:] = [d for d in dirs if not (base == root and d in SKIPPED_DIRS)]
        found += [base / d for d in dirs] + [base / f for f in files]
    return found
