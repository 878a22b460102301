"""Run and sweep folders: one of its own per run and sweep, one writer each, and an existing run's
folder put back as it was when a (re)start fails.

Runs started in the same second share Hydra's default ``outputs/<date>/<time>``; the second would
overwrite the first's ``.hydra/`` files and resume from its checkpoints, so :func:`fresh_dir`
(``${resnet_exp.fresh_dir:...}``) claims the folder with an atomic ``mkdir``, or ``<path>-2``, ...
Hydra rewrites ``.hydra/*.yaml`` and the log before our code runs; :class:`RunFolderGuard` undoes
that when the start fails."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resnet_exp.atomic import atomic_write
from resnet_exp.errors import exit_user_error
from resnet_exp.hydra_glue.sweep_failures import distinguishing
from resnet_exp.tracking import identity
from resnet_exp.tracking.folder_lock import FolderBusy, FolderLock
from resnet_exp.tracking.record import CHECKPOINTS, HYDRA_DIR, MULTIRUN_YAML, SUMMARY_JSON
from resnet_exp.training.facts import is_rank_zero
from resnet_exp.training.job_plan import finished_in

log = logging.getLogger("resnet_exp")

# Hydra may resolve hydra.run.dir more than once in a process; it must get one answer.
_claimed: dict[str, str] = {}
_HELD: list[FolderLock] = []  # held until the process ends
#: What a snapshot keeps whole in all; a file past it (a huge log) is only cut back to its length.
KEEP_BYTES = 16 * 2**20
SUBDIRS = (HYDRA_DIR, CHECKPOINTS)  # the sub-folders a failed start may have created


# -- claimed: a folder of its own ------------------------------------------------------------------


def fresh_dir(path: str) -> str:
    """``path`` if this process could create it, else the first free ``path-N`` (N >= 2)."""
    if path in _claimed:
        return _claimed[path]
    if not is_rank_zero():
        # torchrun ranks > 0 follow rank 0's folder (distributed.agree_on_run_dir); claiming one
        # here would only leave an empty folder behind.
        return path
    _claimed[path] = claim(path)
    return _claimed[path]


def claim(path: str) -> str:
    """Create ``path`` (or the first free ``path-N``, N >= 2) atomically; the folder created.
    Exit 2 with one paragraph when it cannot be created."""
    base = Path(path)
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        for n in itertools.count(1):
            candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
            with contextlib.suppress(FileExistsError):
                candidate.mkdir()
                return str(candidate)
    except OSError as error:
        _exit_cannot_create(path, error)
    raise AssertionError("unreachable")


def _exit_cannot_create(path: str, error: OSError) -> None:
    where = Path(path) if Path(path).is_absolute() else Path.cwd() / path
    reason = error.strerror or str(error)
    if error.filename and str(error.filename) != str(where):
        reason = f"{error.filename}: {reason}"
    exit_user_error(
        f"cannot create the run folder {str(where)!r} ({reason}). Every run writes "
        "its config, log, metrics and checkpoints there. Run from a folder you can write to, or "
        "choose another one with hydra.run.dir=<folder>."
    )


def check_explicit_run_dir(folder: str) -> None:
    """For ``hydra.run.dir=<folder>`` on the command line (a single run): fail now, clearly, if
    the folder cannot be created, instead of inside Hydra with a partial traceback."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        _exit_cannot_create(folder, error)


# -- one writer, the right kind --------------------------------------------------------------------


def claim_folder(folder: Path, multirun: bool) -> None:
    """Exit 2 with one paragraph if ``folder`` is of the other kind or has a writer; else lock it
    for the rest of this process."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    if multirun:
        wrong = (folder / HYDRA_DIR).is_dir() or (folder / SUMMARY_JSON).is_file()
    else:
        wrong = (folder / MULTIRUN_YAML).is_file()
    if wrong:
        this, other = ("a sweep", "a single run's") if multirun else ("a single run", "a sweep's")
        hint = (
            "a sweep's folder holds one sub-folder per job"
            if multirun
            else "to re-run one job of a sweep, re-run the sweep command (it trains only missing "
            "or unfinished jobs)"
        )
        exit_user_error(
            f"{key}={str(folder)!r} is {other} folder; {this} cannot be written there (its "
            "record would be read as the other kind: status and the report would mix them up). "
            f"Choose another {key}; {hint}."
        )
    if not is_rank_zero():
        return  # torchrun: rank 0 holds the lock for every rank
    what = "the sweep folder" if multirun else "the run folder"
    try:
        _HELD.append(FolderLock(folder, what).acquire())
    except FolderBusy as error:
        exit_user_error(str(error))
    except OSError:
        return  # a folder that cannot take a lock file: the writable check reports it


def rank_overrides(argv: list[str], rank: int) -> list[str]:
    """``argv`` plus, on ranks > 0 (torchrun's, or a SLURM job's tasks), the overrides that keep
    them from writing Hydra's files and the job log (unless the user set those keys)."""
    if rank == 0:
        return argv
    keys = {a.split("=", 1)[0].lstrip("+~") for a in argv if "=" in a}
    extra = ("hydra.output_subdir=null", "hydra/job_logging=stdout")
    return argv + [override for override in extra if override.split("=", 1)[0] not in keys]


@contextlib.contextmanager
def job_folder_lock(run_dir: Path, multirun: bool) -> Iterator[None]:
    """A sweep job's folder, locked while the job runs (a single run's is held already)."""
    held = {lock.folder.resolve() for lock in _HELD}
    if not multirun or not is_rank_zero() or run_dir.resolve() in held:
        yield  # (a job folder that is the sweep folder itself is held already)
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    with FolderLock(run_dir, "the sweep job's folder"):
        yield


# -- put back: an existing run folder as it was before a failed (re)start --------------------------


def _own_files(root: Path) -> list[Path]:
    """The files a run writes in its folder, by size: regular files at its top and in ``.hydra/``
    (never a link, a special file, a checkpoint, nor anything in another sub-folder, which may be
    another run's)."""
    found = []
    for folder in (root, root / HYDRA_DIR):
        if folder == root or (folder.is_dir() and not folder.is_symlink()):
            found += [e for e in os.scandir(folder) if e.is_file(follow_symlinks=False)]
    found.sort(key=lambda e: e.stat(follow_symlinks=False).st_size)
    return [Path(e.path) for e in found if not e.name.endswith(".pt")]


@dataclass
class FolderSnapshot:
    """What each of the run's own files held (``bytes``, the smallest first, up to
    :data:`KEEP_BYTES` in all) or how long it was (``int``), and its sub-folders that were there."""

    root: Path
    files: dict[Path, bytes | int] = field(default_factory=dict)
    dirs: set[Path] = field(default_factory=set)

    @classmethod
    def take(cls, root: Path) -> FolderSnapshot:
        snap, kept = cls(root, dirs={root / d for d in SUBDIRS if (root / d).is_dir()}), 0
        for path in _own_files(root):
            size = path.stat().st_size
            kept += size
            snap.files[path] = path.read_bytes() if kept <= KEEP_BYTES else size
        return snap

    def restore(self) -> None:
        """Put every file back, remove the run's files and sub-folders that were not there."""
        for path, kept in self.files.items():
            if isinstance(kept, int):
                if path.is_file() and path.stat().st_size > kept:
                    with path.open("r+b") as handle:
                        handle.truncate(kept)
            elif not path.is_file() or path.read_bytes() != kept:
                atomic_write(path, kept)
        for path in _own_files(self.root):
            if path not in self.files:
                path.unlink(missing_ok=True)
        for folder in {self.root / d for d in SUBDIRS} - self.dirs:
            with contextlib.suppress(OSError):  # not there, not empty, or not a folder
                folder.rmdir()


class RunFolderGuard:
    """Undo what Hydra and a failed start wrote into an existing run folder: a snapshot taken
    before Hydra starts, put back unless :meth:`started` says the run really started there."""

    active: FolderSnapshot | None = None

    @classmethod
    def take(cls, run_dir: Path) -> None:
        """For a single run with an explicit ``hydra.run.dir`` (nothing to do unless it exists)."""
        exists = run_dir.is_dir() and any(run_dir.iterdir())
        cls.active = FolderSnapshot.take(run_dir) if exists else None

    @classmethod
    def started(cls) -> None:
        cls.active = None

    @classmethod
    def restore(cls) -> None:
        """Put the folder back as it was (a no-op without an active guard)."""
        snapshot, cls.active = cls.active, None
        if snapshot is not None:
            snapshot.restore()


# -- a job's folder in its sweep: found by its identity -------------------------------------------


def job_dirname(task: Any, root: Any) -> str:
    """The job's folder in its sweep: the one that holds its identity already (whatever its
    name: an older sweep's, or one named before a new axis was added), else a new one named by
    what sets the job apart from the sweep's other jobs (``identity.folder_name``)."""
    # lazily: command -> compose -> register imports this module
    from resnet_exp.hydra_glue.command import recorded_sweep_jobs

    sweep_dir = Path(str(root.hydra.sweep.dir))
    key = identity.identity_of_node(root)
    held = identity.index(sweep_dir).get(key) if key else None
    if held is not None:
        return held.name
    return identity.folder_name(list(task), key or ",".join(task), recorded_sweep_jobs(sweep_dir))


def unfinished(batch: list, loader: Any, config: Any, every_job: list[list[str]]) -> list:
    """The jobs of ``batch`` to launch: not those whose identity already finished in the sweep
    folder (each said in one line), nor a second job of one identity in this command."""
    held = identity.index(Path(str(config.hydra.sweep.dir)))
    kept, seen = [], set()
    for job in batch:
        key = identity.identity_of_node(loader.load_sweep_config(config, list(job)))
        name = distinguishing(list(job), every_job)
        done = finished_in(held, key)
        if done is not None:
            log.info("job %s %s earlier in %s: skipped, its record is kept", name, done[1], done[0])
        elif key is not None and key in seen:
            log.info("job %s computes what an earlier job of this sweep does: skipped", name)
        else:
            kept.append(job)
            seen.add(key)
    return kept
