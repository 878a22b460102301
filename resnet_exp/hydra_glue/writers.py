"""Before Hydra writes: the command's folder is the kind it claims to be and has no other writer.

A single run's folder (``hydra.run.dir``) and a sweep's folder (``hydra.sweep.dir``) are locked by
the launching process for as long as it lives (:mod:`resnet_exp.tracking.folder_lock`); each sweep
job locks its own folder while it trains, so a single run pointed into a job's folder is refused
too. A run pointed at a sweep's folder, or a sweep at a run's, is refused: the record of one would
be read as the other (``status`` showed a sweep's completed jobs as ``pending``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from resnet_exp.errors import EXIT_USER_ERROR
from resnet_exp.tracking.folder_lock import FolderBusy, FolderLock
from resnet_exp.tracking.record import HYDRA_DIR, MULTIRUN_YAML, SUMMARY_JSON

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from resnet_exp.hydra_glue.command import Command

_HELD: list[FolderLock] = []  # held until the process ends


def is_sweep_folder(folder: Path) -> bool:
    return (folder / MULTIRUN_YAML).is_file()


def is_run_folder(folder: Path) -> bool:
    return (folder / HYDRA_DIR).is_dir() or (folder / SUMMARY_JSON).is_file()


def claim_folder(folder: Path, multirun: bool) -> None:
    """Exit 2 with one paragraph if ``folder`` is of the other kind or has a writer; else lock it
    for the rest of this process."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    wrong = is_run_folder(folder) if multirun else is_sweep_folder(folder)
    if wrong:
        this, other = ("a sweep", "a single run's") if multirun else ("a single run", "a sweep's")
        _refuse(
            f"{key}={str(folder)!r} is {other} folder; {this} cannot be written there (its "
            "record would be read as the other kind: status and the report would mix them up). "
            f"Choose another {key}"
            + (
                "; to re-run one job of a sweep, re-run the sweep command (it trains only "
                "missing or unfinished jobs)."
                if not multirun
                else "; a sweep's folder holds one sub-folder per job."
            )
        )
    if os.environ.get("RANK", "0") != "0":
        return  # torchrun: rank 0 holds the lock for every rank
    try:
        _HELD.append(
            FolderLock(folder, "the sweep folder" if multirun else "the run folder").acquire()
        )
    except FolderBusy as error:
        _refuse(str(error))
    except OSError:
        return  # a folder that cannot take a lock file: the writable check reports it


@contextlib.contextmanager
def job_folder_lock(run_dir: Path, multirun: bool) -> Iterator[None]:
    """A sweep job's folder, locked while the job runs (a single run's is held already)."""
    held = {lock.folder.resolve() for lock in _HELD}
    if not multirun or os.environ.get("RANK", "0") != "0" or run_dir.resolve() in held:
        yield  # (a job folder that is the sweep folder itself is held already)
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    with FolderLock(run_dir, "the sweep job's folder"):
        yield


def _refuse(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USER_ERROR)


def claim_command_folders(command: Command) -> None:
    """For ``python -m resnet_exp <args>`` (sweep folder already claimed): check and lock the
    explicit run or sweep folder it will write. Hydra's own flags (``--cfg``, ...) write nothing."""
    if not command.plain:
        return
    value = command.sweep_dir if command.multirun else command.run_dir
    if value is not None:
        folder = Path(os.path.expanduser(value))
        folder.mkdir(parents=True, exist_ok=True)
        claim_folder(folder, command.multirun)


def check_names_stay_inside(hydra: DictConfig) -> str | None:
    """What is wrong with a name Hydra turns into a path inside the run or sweep folder (the
    job's log file, the ``.hydra`` record, a job's sub-folder), or None: none may lead out."""
    from omegaconf import OmegaConf

    names = {
        "hydra.job.name": (OmegaConf.select(hydra, "job.name"), False),
        "hydra.output_subdir": (OmegaConf.select(hydra, "output_subdir"), True),
        "hydra.sweep.subdir": (
            OmegaConf.select(hydra, "sweep.subdir", throw_on_resolution_failure=False),
            True,
        ),
    }
    for key, (value, nested) in names.items():
        if value is None or "${" in str(value):
            continue
        text = str(value)
        parts = Path(text).parts
        leaves = (
            not text.strip()
            or Path(text).is_absolute()
            or ".." in parts
            or (not nested and (len(parts) != 1 or text in (".", "..") or "\\" in text))
        )
        if leaves:
            what = "a plain file name" if not nested else "a relative path that stays inside"
            return (
                f"{key}={text!r} would write outside the run or sweep folder (or nowhere); it "
                f"must be {what} (no '..', no leading '/'), e.g. {key}="
                + ("my_job" if not nested else "sub")
                + "."
            )
    return None
