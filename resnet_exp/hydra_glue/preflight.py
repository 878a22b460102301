"""Check a command line before Hydra acts on it, so that a mistake creates and changes nothing.

Hydra creates the run folder and writes its ``.hydra/`` files before our task function runs; a
value rejected only then would already have rewritten an existing run's config, and a sweep would
have trained its valid jobs before reaching the bad one. So the entry point first parses every
override, composes and validates the config of every job of a sweep, checks the run (or sweep)
folder and the launcher's options, and only then hands the command to Hydra. Errors found later,
inside the run, are undone by :class:`RunFolderGuard` when the folder existed before.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from resnet_exp.errors import EXIT_USER_ERROR, UserError

if TYPE_CHECKING:
    from resnet_exp.hydra_glue.command import Command


class CommandError(UserError):
    """The command line cannot run as given."""


def preflight(command: Command, dry: bool = False) -> None:
    """Exit 2 with one paragraph if any job of this command would be rejected; else return.
    ``dry``: for ``--cfg`` on a sweep, which is checked like the sweep itself."""
    try:
        check_command(command, dry)
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR) from None


def check_command(command: Command, dry: bool = False) -> None:
    """Raise :class:`CommandError` for the first problem of ``python -m resnet_exp <args>``.

    Only plain runs and sweeps are checked; Hydra's own flags (``--cfg``, ``--help``, ...) pass."""
    if not (command.plain or dry):
        return
    if command.parse_error is not None:
        raise CommandError(command.parse_error)
    for override in command.parsed:
        key = override.get_key_element().lstrip("+~")
        if key in ("hydra.run.dir", "hydra.sweep.dir") and not str(override.value() or "").strip():
            raise CommandError(
                f"{key} is empty ({override.input_line!r}; an unset shell variable?). Give the "
                f"folder to write the run into, e.g. {key}=outputs/my_run, or leave {key} out "
                "for a new dated folder under outputs/."
            )
    if command.compose_error is not None:
        raise CommandError(command.compose_error)
    from resnet_exp.hydra_glue.writers import check_names_stay_inside

    leaves = check_names_stay_inside(command.hydra) if command.hydra is not None else None
    if leaves is not None:
        raise CommandError(leaves)
    if not command.multirun:
        _validate(_compose(command.overrides, hydra=False, what=None), None)
        _check_folder(command.run_dir, "hydra.run.dir")
        return
    _check_jobs(command)
    _check_folder(command.sweep_dir, "hydra.sweep.dir")
    _check_launcher(command.hydra)


def _check_jobs(command: Command) -> None:
    """Every job of the sweep composes and validates."""
    jobs, swept = command.jobs(), command.swept_keys
    composed: set[tuple[str, ...]] = set()
    for number, job in enumerate(jobs):
        values = [o for o in job if o.split("=", 1)[0] in swept]
        what = f"job {number} of {len(jobs)} of the sweep ({' '.join(values) or 'no overrides'})"
        # Replicates differ only in their seed: compose one of them, check the others' seeds alone
        # (composing takes a few tenths of a second per job).
        unseeded = tuple(o for o in job if o.split("=", 1)[0] != "seed")
        if unseeded in composed:
            _check_seed(job, what)
            continue
        composed.add(unseeded)
        _validate(_compose(job, hydra=False, what=what), what)


def _compose(overrides: Sequence[str], hydra: bool, what: str | None) -> DictConfig:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from resnet_exp.hydra_glue.compose import compose, composition_error

    try:
        return compose(overrides, return_hydra_config=hydra)
    except (HydraException, OmegaConfBaseException) as error:
        prefix = f"{what}: " if what else ""
        raise CommandError(f"{prefix}{composition_error(error)}") from None


def _validate(cfg: DictConfig, what: str | None) -> None:
    from resnet_exp.validation import validate

    try:
        validate(cfg)
    except UserError as error:
        if what is None:
            raise CommandError(str(error)) from None
        raise CommandError(f"{what}: {error} No job of the sweep was started.") from None


def _check_seed(job: list[str], what: str) -> None:
    """The seed of a job whose other values were validated with another replicate's."""
    from resnet_exp.config import Config, rule_of
    from resnet_exp.hydra_glue.command import parse_overrides

    rule = rule_of(Config, "seed")
    for override in parse_overrides([o for o in job if o.split("=", 1)[0] == "seed"]):
        value = override.value()
        if rule is not None and not (isinstance(value, int) and rule.accepts(value)):
            raise CommandError(
                f"{what}: seed={value!r}: {rule.describe()}. No job of the sweep was started."
            )


def _check_folder(value: str | None, key: str) -> None:
    """An explicit run/sweep folder must be writable, without creating anything to find out."""
    if value is None:
        return
    folder = Path(os.path.expanduser(value)).absolute()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return  # a file in the way: run_dir.check_explicit_run_dir says so when mkdir fails
    reason = None
    try:
        if os.statvfs(existing).f_flag & os.ST_RDONLY:
            reason = "it is on a read-only file system"
    except OSError:
        pass
    if reason is None and not os.access(existing, os.W_OK | os.X_OK):
        reason = "you have no permission to write there"
    if reason is not None:
        what = "the folder" if existing == folder else f"its parent {str(existing)!r}"
        raise CommandError(
            f"{key}={value!r} cannot be written to: {what} exists but {reason}. Every run "
            f"writes its config, log, metrics and checkpoints there; point {key} at a writable "
            "folder (a finished run's folder can be read and reported on where it is)."
        )


def _check_launcher(hydra: DictConfig) -> None:
    """Options of the joblib launcher that joblib would only reject after the sweep started."""
    launcher = hydra.get("launcher")
    target = str(OmegaConf.select(hydra, "launcher._target_") or "")
    if launcher is None or "joblib" not in target.lower():
        return
    options: dict = {}
    try:
        import joblib

        options = OmegaConf.to_container(launcher, resolve=True)
        options.pop("_target_", None)
        options["backend"] = "loky"  # what Hydra's joblib launcher always uses
        joblib.Parallel(**options)
        joblib.effective_n_jobs(options.get("n_jobs"))
    except Exception as error:  # joblib's own rejection, whatever its type
        raise CommandError(
            f"the joblib launcher rejects its options ({type(error).__name__}: {error}); "
            f"hydra.launcher is {options}. Fix the hydra.launcher.<option> override (e.g. "
            "hydra.launcher.n_jobs=2; n_jobs=-1 uses every core)."
        ) from None


class RunFolderGuard:
    """Undo what Hydra and a failed start wrote into an existing run folder.

    Taken before Hydra starts: a :class:`FolderSnapshot` of the folder. :meth:`restore` puts it
    back when the run fails or stops before it starts (whatever the exception); :meth:`started` is
    called once the run really starts or resumes there (then nothing is undone).
    """

    active: RunFolderGuard | None = None

    def __init__(self, run_dir: Path) -> None:
        from resnet_exp.hydra_glue.folder_snapshot import FolderSnapshot

        self.run_dir = run_dir
        exists = run_dir.is_dir() and any(run_dir.iterdir())
        self.snapshot = FolderSnapshot.take(run_dir) if exists else None

    @classmethod
    def take(cls, command: Command) -> None:
        """For a single run with an explicit, existing ``hydra.run.dir``."""
        if command.flags or command.run_dir is None:
            return
        guard = cls(Path(os.path.expanduser(command.run_dir)))
        cls.active = guard if guard.snapshot is not None else None

    @classmethod
    def started(cls) -> None:
        cls.active = None

    @classmethod
    def restore(cls) -> None:
        """Put the folder back as it was (a no-op without an active guard)."""
        guard, cls.active = cls.active, None
        if guard is not None and guard.snapshot is not None:
            guard.snapshot.restore()
