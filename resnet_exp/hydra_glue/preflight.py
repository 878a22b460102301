"""A command line checked before Hydra acts on it, so that a mistake creates and changes nothing.

Hydra writes the run folder's ``.hydra/`` files before our task runs, and a sweep would train its
valid jobs before reaching a bad one; so every job composes and validates, the folders and the
launcher's options are checked, and only then are the folders claimed and the command handed to
Hydra. :func:`dry_sweep` is ``--multirun ... --cfg job``, which Hydra refuses."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.types import ValueType
from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from resnet_exp.config import Config, rule_of
from resnet_exp.errors import EXIT_USER_ERROR, UserError, exit_user_error
from resnet_exp.hydra_glue.command import CFG_FLAGS, Command, parse_overrides
from resnet_exp.hydra_glue.compose import compose, composition_error, group_options
from resnet_exp.hydra_glue.folders import (
    RunFolderGuard,
    check_explicit_run_dir,
    claim,
    claim_folder,
)
from resnet_exp.hydra_glue.gpu_slots import predicted
from resnet_exp.hydra_glue.launchers import (
    OPTUNA_CHOICES,
    SCALE_LAUNCHERS,
    launcher_traits,
    planned_slots,
    scale_extra_installed,
    tune_extra_installed,
)
from resnet_exp.hydra_glue.sweep_failures import one_line
from resnet_exp.tracking.identity import identity_key
from resnet_exp.training.job_plan import ForeignJobFolder, plan_job
from resnet_exp.validation import check_resolves, unresolvable, validate

CHOICES = ("job", "hydra", "all")  # what --cfg prints


class CommandError(UserError):
    """The command line cannot run as given."""


def preflight(command: Command, dry: bool = False) -> None:
    """Exit 2 with one paragraph if any job of this command would be rejected; else return.
    ``dry``: for ``--cfg`` on a sweep, which is checked like the sweep itself."""
    try:
        check_command(command, dry)
    except CommandError as error:
        exit_user_error(str(error))


def check_command(command: Command, dry: bool = False) -> None:
    """Raise :class:`CommandError` for the first problem of ``python -m resnet_exp <args>``.

    Only plain runs and sweeps are checked; Hydra's own flags (``--cfg``, ``--help``, ...) pass,
    but never a launcher whose extra is missing."""
    if command.launcher in SCALE_LAUNCHERS and not scale_extra_installed():
        raise CommandError(
            f"hydra/launcher={command.launcher} needs submitit and Hydra's submitit launcher, "
            "which are not installed. Install them with the scale extra: pip install "
            '"resnet_exp[scale]" (from a checkout: pip install ".[scale]"), or use '
            "hydra/launcher=joblib to run the sweep's jobs side by side on this machine."
        )
    # --cfg job prints what would run: it composes and every value resolves (a sweep: each job)
    shown = (
        command.cfg in ("job", "all")
        and command.flags <= CFG_FLAGS | {"--resolve"}
        and not command.multirun
    )
    if not (command.plain or dry or shown):
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
        if command.compose_error is None and key.startswith("hydra."):
            _check_resolves(command, override, key)
    if command.compose_error is not None:
        raise CommandError(command.compose_error)
    sweeper = OmegaConf.select(command.hydra, "sweeper._target_") if command.hydra else None
    if str(sweeper).endswith("OptunaSweeper"):
        _check_optuna(command.hydra.sweeper, command)
    leaves = _names_leaving_the_folder(command.hydra) if command.hydra is not None else None
    if leaves is not None:
        raise CommandError(leaves)
    if shown:
        return _validate(command.overrides, None, check_resolves)
    if not command.multirun:
        _validate(command.overrides, None)
        _check_folder(command.run_dir, "hydra.run.dir")
        return
    _check_jobs(command)
    _check_folder(command.sweep_dir, "hydra.sweep.dir")
    problem = _launcher_problem(command.hydra)
    if problem is not None:
        raise CommandError(problem)


def _check_optuna(sweeper: DictConfig, command: Command) -> None:
    """Optuna is installed, and the options it would only reject once the sweep has started."""
    if not tune_extra_installed():
        raise CommandError(
            "hydra/sweeper=optuna needs Optuna 5, which is not installed. Install it with the "
            'tune extra: pip install "resnet_exp[tune]" (from a checkout: pip install ".[tune]"), '
            "or leave hydra/sweeper out to sweep listed values (a,b,c) with the default sweeper."
        )
    for key, choices in OPTUNA_CHOICES.items():
        if sweeper.get(key) not in choices:
            raise CommandError(f"hydra.sweeper.{key}={sweeper.get(key)!r} is not one of: "
                               f"{', '.join(choices)} (hydra/sweeper/optuna.yaml)")  # fmt: skip
    if int(sweeper.n_trials) < 1:
        raise CommandError(f"hydra.sweeper.n_trials={sweeper.n_trials} asks for no trial: give the "
                           "number of trials per study, 1 or more (default 20).")  # fmt: skip
    given = {o.key_or_group for o in command.parsed} | {k for k, _ in command.sweeper_params}
    for role in ("each", "replicates"):  # a key the command does not set would be ignored
        if unset := [k for k in sweeper.get(role) or [] if k not in given]:
            raise CommandError(f"hydra.sweeper.{role} names {', '.join(unset)}, which the command "
                               f"does not set: give its values (e.g. {unset[0]}=a,b) or leave it "
                               f"out of hydra.sweeper.{role}.")  # fmt: skip
    try:  # Hydra would make it only once the sweep has started (a traceback)
        instantiate(sweeper.pruner) if sweeper.get("pruner") else None
    except Exception as error:
        options = "|".join(group_options("hydra/sweeper/pruner"))
        why = one_line(error.__cause__ or error)  # Hydra's own first line names only the target
        raise CommandError(f"hydra.sweeper.pruner cannot be made ({why}): choose one of "
                           f"hydra/sweeper/pruner={options}, or give an Optuna pruner's _target_ "
                           "and arguments (hydra/sweeper/optuna.yaml).") from None  # fmt: skip


def _check_resolves(command: Command, override: Any, key: str) -> None:
    """A ``hydra.*`` value the command sets resolves (Hydra would raise with a traceback);
    ``${hydra:...}`` reads Hydra's runtime values, set only once it runs."""
    if not (override.is_sweep_override() or "${hydra:" in str(override.value())):
        try:
            OmegaConf.select(command.hydra, key[6:], throw_on_resolution_failure=True)
        except OmegaConfBaseException as error:
            raise CommandError(unresolvable(key, str(override.value()), error)) from None


def _check_jobs(command: Command) -> None:
    """The sweep expands into jobs, each of which composes and validates."""
    sweeps = [o.input_line for o in command.parsed if o.is_sweep_override()]
    sweeper = command.hydra.runtime.choices.get("hydra/sweeper")
    for override in command.parsed:
        if override.value_type == ValueType.INTERVAL_SWEEP and sweeper in ("resnet_exp", "basic"):
            raise CommandError(
                f"{override.input_line}: interval() needs a sampling sweeper (such as Optuna's); "
                f"hydra/sweeper={sweeper} runs lists: a,b,c, range(), choice() or glob()."
            )
    jobs, swept = command.jobs(), command.swept_keys
    if not jobs:
        raise CommandError(
            f"the sweep has no job: {' '.join(sweeps)} expands to no value (a glob() matching no "
            "option, an empty range()); --help lists each group's options."
        )
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
        _validate(job, what)


def _validate(overrides: Sequence[str], what: str | None, check: Callable = validate) -> None:
    """The job's config composes and passes ``check``; else CommandError (prefixed by ``what``)."""
    try:
        cfg = compose(overrides)
    except (HydraException, OmegaConfBaseException) as error:
        prefix = f"{what}: " if what else ""
        raise CommandError(f"{prefix}{composition_error(error)}") from None
    try:
        check(cfg)
    except UserError as error:
        if what is None:
            raise CommandError(str(error)) from None
        raise CommandError(f"{what}: {error} No job of the sweep was started.") from None


def _check_seed(job: list[str], what: str) -> None:
    """The seed of a job whose other values were validated with another replicate's."""
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
        return  # a file in the way: folders.check_explicit_run_dir says so when mkdir fails
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


def _launcher_problem(hydra: DictConfig) -> str | None:
    """Options the launcher would only reject after the sweep started (its declared check)."""
    check = launcher_traits(hydra.get("launcher")).check_options
    return check(hydra.launcher) if check is not None else None


def _names_leaving_the_folder(hydra: DictConfig) -> str | None:
    """What is wrong with a name Hydra turns into a path inside the run or sweep folder (the
    job's log file, the ``.hydra`` record, a job's sub-folder), or None: none may lead out."""
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
            example = "my_job" if not nested else "sub"
            return (
                f"{key}={text!r} would write outside the run or sweep folder (or nowhere); it "
                f"must be {what} (no '..', no leading '/'), e.g. {key}={example}."
            )
    return None


# -- the folders the command writes, claimed once it passed ----------------------------------------


def claim_folders(command: Command) -> Command:
    """Before Hydra starts: an existing explicit run folder guarded (:class:`RunFolderGuard`), an
    explicit one created, a sweep without a fixed folder given one of its own (appended as
    ``hydra.sweep.dir=<claimed>``), and the folder the command writes checked and locked."""
    if not command.flags and command.run_dir is not None:
        RunFolderGuard.take(Path(os.path.expanduser(command.run_dir)))
    if command.new_run_dir:
        check_explicit_run_dir(command.new_run_dir)
    command = claim_sweep_dir(command)
    value = command.sweep_dir if command.multirun else command.run_dir
    if command.plain and value is not None:  # Hydra's own flags (--cfg, ...) write nothing
        folder = Path(os.path.expanduser(value))
        folder.mkdir(parents=True, exist_ok=True)
        claim_folder(folder, command.multirun)
    return command


def claim_sweep_dir(command: Command) -> Command:
    """``command`` plus ``hydra.sweep.dir=<a folder of its own>`` when it launches a sweep whose
    folder is not fixed on the command line; ``command`` unchanged otherwise (a single run, a named
    sweep folder, ``--cfg``/``--help``, or a command Hydra will reject with its own message)."""
    if not (command.launches and command.multirun) or command.sweep_dir is not None:
        return command
    if command.hydra is None:  # it did not compose: Hydra reports why in its own words
        return command
    return command.with_sweep_dir(claim(str(command.hydra.sweep.dir)))


# -- the dry sweep: --multirun ... --cfg job ------------------------------------------------------


def dry_sweep(command: Command) -> int:
    """Print every job's config; returns the process exit code."""
    what = command.cfg or "job"
    if what not in CHOICES:
        print(f"error: --cfg {what!r} is not a choice; valid: {', '.join(CHOICES)}.",
              file=sys.stderr)  # fmt: skip
        return EXIT_USER_ERROR
    preflight(command, dry=True)  # each job parses, composes and validates, or exit 2
    slots = planned_slots(launcher_traits(command.hydra.launcher))  # each job's GPU, if any
    for number, job in enumerate(command.jobs()):
        full, task = compose(job, return_hydra_config=True), compose(job)
        print(f"# job {number}: {' '.join(job) or '(no overrides)'}")
        print(f"# {_would(full, task, command.sweep_dir)}")
        if slots and str(task.trainer.device) in ("auto", "cuda"):
            print(f"# {predicted(number, slots)}")
        cfg = full.hydra if what == "hydra" else full if what == "all" else task
        print(OmegaConf.to_yaml(cfg, resolve=command.resolve))
    return 0


def _would(full: DictConfig, task: DictConfig, sweep_dir: str | None) -> str:
    """What running this job would do with its folder: start, resume or skip (job_plan.py)."""
    if sweep_dir is None:
        return (
            "would be started (each run of this command makes a new sweep folder; name one "
            "with hydra.sweep.dir=outputs/multirun/<name> to resume it later)"
        )
    job_dir = Path(sweep_dir) / str(full.hydra.sweep.subdir)
    try:
        key = identity_key(OmegaConf.to_container(task, resolve=True))
        plan = plan_job(job_dir, key, Path(sweep_dir))
    except ForeignJobFolder as error:
        return f"would be refused: {error}"
    verb = {"skip": "skipped", "resume": "resumed", "start": "started"}[plan.action]
    why = "" if plan.reason == "start" else f" ({plan.reason})"
    return f"{job_dir}: would be {verb}{why}"
