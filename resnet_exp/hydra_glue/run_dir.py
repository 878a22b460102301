"""A run folder of its own for every single run, even two started in the same second.

Hydra's default ``outputs/<date>/<time>`` is shared by runs started in the same second (a shell loop
with ``&``, two terminals), and the second would then overwrite the first's ``.hydra/`` files,
append to its metrics and resume from its checkpoints. ``${resnet_exp.fresh_dir:<path>}`` claims
the folder atomically (``mkdir``) and, when another process got there first, takes ``<path>-2``,
``<path>-3``, ... instead. An explicit ``hydra.run.dir=...`` (how a run is resumed) bypasses it.
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

from resnet_exp.errors import EXIT_USER_ERROR

# Hydra may resolve hydra.run.dir more than once in a process; it must get one answer.
_claimed: dict[str, str] = {}


def fresh_dir(path: str) -> str:
    """``path`` if this process could create it, else the first free ``path-N`` (N >= 2)."""
    if path in _claimed:
        return _claimed[path]
    if os.environ.get("RANK", "0") != "0":
        # torchrun ranks > 0 follow rank 0's folder (distributed.agree_on_run_dir); claiming one
        # here would only leave an empty folder behind.
        return path
    try:
        _claimed[path] = claim(path)
    except OSError as error:
        exit_cannot_create(path, error)
    return _claimed[path]


def claim(path: str) -> str:
    """Create ``path`` (or the first free ``path-N``, N >= 2) atomically; the folder created."""
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return str(candidate)
    raise AssertionError("unreachable")


def cannot_create_message(path: str, error: OSError) -> str:
    where = Path(path) if Path(path).is_absolute() else Path.cwd() / path
    reason = error.strerror or str(error)
    if error.filename and str(error.filename) != str(where):
        reason = f"{error.filename}: {reason}"
    return (
        f"cannot create the run folder {str(where)!r} ({reason}). Every run writes "
        "its config, log, metrics and checkpoints there. Run from a folder you can write to, or "
        "choose another one with hydra.run.dir=<folder>."
    )


def exit_cannot_create(path: str, error: OSError) -> None:
    """Stop with one paragraph and exit 2. Raised as SystemExit because OmegaConf and Hydra would
    wrap any ordinary exception from a resolver in a traceback."""
    print(f"error: {cannot_create_message(path, error)}", file=sys.stderr)
    raise SystemExit(EXIT_USER_ERROR)


def check_explicit_run_dir(folder: str | None) -> None:
    """For ``hydra.run.dir=<folder>`` on the command line (a single run,
    :attr:`Command.new_run_dir`): fail now, clearly, if the folder cannot be created, instead of
    inside Hydra with a partial traceback."""
    if not folder:
        return
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        exit_cannot_create(folder, error)
