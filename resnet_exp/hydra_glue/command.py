"""The command line, parsed once before Hydra starts into a :class:`Command`: Hydra's flags, the
overrides as Hydra reads them, sweep or not (``-m``, or ``hydra.mode=MULTIRUN`` from the command
line or a preset), the explicit folders, the launcher and each job of a sweep (a preset's
``hydra.sweeper.params`` merged as Hydra merges them). Every start-up check reads this one value;
``status`` expands a sweep's ``multirun.yaml`` with the same :func:`sweep_jobs`."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ValueType
from hydra.errors import HydraException, OverrideParseException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from resnet_exp.hydra_glue.compose import compose, composition_error, config_loader
from resnet_exp.hydra_glue.internals import split_sweep
from resnet_exp.tracking.record import MULTIRUN_YAML

MULTIRUN_FLAGS = frozenset({"--multirun", "-m"})
CFG_FLAGS = frozenset({"--cfg", "-c"})
#: Hydra's flags that take the next argument as their value.
_VALUED = CFG_FLAGS | {"--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                       "--config-dir", "-cd", "--experimental-rerun", "--shell-completion",
                       "-sc"}  # fmt: skip
_INFO_CHOICES = ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")
#: Flags with which Hydra launches nothing (so no folder may be created).
NO_LAUNCH = frozenset({"--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i", "--version",
                       "--shell-completion", "-sc"})  # fmt: skip
#: Flags with which Hydra creates no run folder.
_NO_RUN = frozenset({"--cfg", "-c", "--help", "-h", "--hydra-help"})
#: Flags that leave our config tree and its composition as they are.
_SAME_TREE = MULTIRUN_FLAGS | CFG_FLAGS | {"--resolve", "--package", "-p"}


@dataclass(frozen=True)
class Command:
    """One ``python -m resnet_exp`` command line, read once."""

    args: tuple[str, ...]  # as handed to Hydra
    flags: frozenset[str] = frozenset()  # --cfg, -m, --help, ... (without their values)
    cfg: str | None = None  # --cfg's value
    resolve: bool = False  # --resolve
    overrides: tuple[str, ...] = ()  # everything that is not a flag, in order
    parsed: tuple[Any, ...] = ()  # Hydra's Override for each (empty when one does not parse)
    parse_error: str | None = None  # the first override that does not parse, in words
    multirun: bool = False
    run_dir: str | None = None  # hydra.run.dir=<folder> (Hydra's quoting removed), else None
    sweep_dir: str | None = None  # hydra.sweep.dir=<folder> when it names one fixed folder
    launcher: str | None = None  # hydra/launcher=<option> on the command line
    hydra: Any = None  # the composed `hydra` node of the sweep's shared overrides (None: not)
    compose_error: str | None = None  # why composing them failed, in words
    sweeper_params: tuple[tuple[str, str], ...] = ()  # a preset's hydra.sweeper.params

    @property
    def plain(self) -> bool:
        """A run or a sweep with no Hydra flag but ``-m``: what the preflight checks."""
        return self.flags <= MULTIRUN_FLAGS

    @property
    def launches(self) -> bool:
        """Whether Hydra would launch a job (not ``--cfg``, ``--help``, ``--info``, ...)."""
        return not self.flags & NO_LAUNCH

    @property
    def new_run_dir(self) -> str | None:
        """The explicit ``hydra.run.dir`` of a single run that Hydra would create, else None."""
        return None if self.multirun or self.flags & _NO_RUN else self.run_dir

    @property
    def dry_sweep(self) -> bool:
        """``--cfg`` on a sweep, which Hydra refuses and ``preflight.dry_sweep`` prints per job."""
        return self.cfg is not None and self.multirun

    @property
    def swept_keys(self) -> set[str]:
        """Keys whose values differ between the sweep's jobs (command line or preset)."""
        swept = {o.get_key_element() for o in self.parsed if o.is_sweep_override()}
        return swept | {k for k, _ in self.sweeper_params}

    def jobs(self) -> list[list[str]]:
        """The overrides of each job, in launch order (one job for a single run)."""
        if not self.multirun:
            return [list(self.overrides)]
        return sweep_jobs(dict(self.sweeper_params), self.overrides)

    def with_sweep_dir(self, folder: str) -> Command:
        """This command with ``hydra.sweep.dir=<folder>`` appended (a folder claimed for it)."""
        args = (*self.args, f"hydra.sweep.dir={quoted(folder)}")
        return dataclasses.replace(self, args=args, sweep_dir=folder)


def parse_command(args: Sequence[str]) -> Command:
    """Read ``args`` (``sys.argv[1:]``). Never raises: what does not parse or compose is kept in
    ``parse_error``/``compose_error`` for the preflight to report (else Hydra reports it)."""
    flags, cfg, overrides = _split(list(args))
    command = Command(tuple(args), frozenset(flags), cfg, "--resolve" in flags, tuple(overrides))
    try:
        parsed = parse_overrides(overrides)
    except ValueError as error:
        return dataclasses.replace(command, parse_error=str(error), multirun=_flagged(flags))
    command = dataclasses.replace(
        command,
        parsed=tuple(parsed),
        run_dir=explicit_value(parsed, "hydra.run.dir"),
        sweep_dir=explicit_value(parsed, "hydra.sweep.dir"),
        launcher=explicit_value(parsed, "hydra/launcher"),
    )
    if not command.flags <= _SAME_TREE:  # --help, --info, another config tree: Hydra's business
        return dataclasses.replace(command, multirun=_flagged(flags))
    return _composed(command)


def _flagged(flags: Iterable[str]) -> bool:
    return bool(set(flags) & MULTIRUN_FLAGS)


def _split(args: list[str]) -> tuple[list[str], str | None, list[str]]:
    """(flags, --cfg's value, overrides); a flag's value is neither flag nor override."""
    flags: list[str] = []
    overrides: list[str] = []
    cfg, i = None, 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-"):
            overrides.append(arg)
        else:
            flags.append(arg)
            valued = i + 1 < len(args) and args[i + 1] in _INFO_CHOICES  # --info's is optional
            takes = arg in _VALUED or (arg in ("--info", "-i") and valued)
            if takes and i + 1 < len(args):
                i += 1
                cfg = args[i] if arg in CFG_FLAGS else cfg
        i += 1
    return flags, cfg, overrides


def parse_overrides(overrides: Sequence[str]) -> list:
    """Hydra's reading of each override; ``ValueError`` naming the first that does not parse."""
    parser = OverridesParser.create()
    for override in overrides:  # one at a time, to name the one that does not parse
        try:
            parser.parse_overrides([override])
        except OverrideParseException as error:
            reason = str(error).split("\nSee https://")[0].strip()
            raise ValueError(
                f"cannot parse the override {override!r}: {reason}. Each override is key=value "
                "(a list is [a,b], a sweep a,b; quote values holding spaces or brackets)."
            ) from None
    return parser.parse_overrides(list(overrides))


def explicit_value(parsed: Sequence[Any], key: str) -> str | None:
    """The value the command line gives ``key`` (the last one; Hydra's quoting removed); None when
    absent, a sweep, or a pattern such as ``outputs/${now:%H}`` (a new folder each time)."""
    for override in reversed(parsed):
        if override.get_key_element().lstrip("+~") == key and not override.is_sweep_override():
            value = override.value()
            return None if value is None or "${" in str(value) else str(value)
    return None


def _composed(command: Command) -> Command:
    """``command`` with what composing its shared overrides tells: sweep or not, sweeper params."""
    fixed = [o.input_line for o in command.parsed if not o.is_sweep_override()]
    try:
        hydra = compose(fixed, return_hydra_config=True).hydra
        mode = str(OmegaConf.select(hydra, "mode"))
    except (HydraException, OmegaConfBaseException) as error:
        failed = composition_error(error)
        return dataclasses.replace(command, compose_error=failed, multirun=_flagged(command.flags))
    params = hydra.sweeper.get("params") or {}
    return dataclasses.replace(
        command,
        hydra=hydra,
        multirun=_flagged(command.flags) or mode.endswith("MULTIRUN"),
        sweeper_params=tuple((str(k), str(v)) for k, v in params.items()),
    )


def sweep_jobs(params: Mapping[str, Any], overrides: Sequence[str]) -> list[list[str]]:
    """The overrides of each job of a sweep, as Hydra's basic sweeper expands them: a preset's
    ``hydra.sweeper.params`` first, the command line winning for a key it also names."""
    named = {str(o).split("=", 1)[0].lstrip("+~") for o in overrides}
    merged = [f"{k}={v}" for k, v in params.items() if k not in named] + [str(o) for o in overrides]
    with config_loader() as loader:  # glob() lists a config group's options
        return split_sweep([interval_ends(o) for o in merged], loader)


def interval_ends(override: str) -> str:
    """``lr=tag(log,interval(0.001,1))`` -> ``lr=0.001,1.0``: an Optuna search range as the jobs
    at its two ends, which the preflight checks and job folders are named among."""
    (parsed,) = parse_overrides([override])
    if parsed.value_type != ValueType.INTERVAL_SWEEP:
        return override
    value = parsed.value()
    cast = int if "int" in value.tags else float
    return f"{parsed.get_key_element()}={cast(value.start)},{cast(value.end)}"


def quoted(path: str) -> str:
    """A path as a Hydra override value (quoted unless it is plain)."""
    if re.fullmatch(r"[A-Za-z0-9._/+@-]+", path):
        return path
    return "'" + path.replace("\\", "\\\\").replace("'", "\\'") + "'"


def recorded_sweep_jobs(sweep_dir: Path) -> list[list[str]]:
    """Each job a sweep's command asked for, from the ``multirun.yaml`` Hydra wrote in its folder
    before launching any; [] for a single run or a folder without a readable one."""
    return read_sweep_jobs(sweep_dir)[0]


def read_sweep_jobs(sweep_dir: Path) -> tuple[list[list[str]], str | None]:
    """:func:`recorded_sweep_jobs` and what is wrong with a damaged ``multirun.yaml`` (None when
    it is absent or sound): damage never invents a job."""
    try:
        data = yaml.safe_load((sweep_dir / MULTIRUN_YAML).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [], None
    except (OSError, ValueError, yaml.YAMLError) as error:  # ValueError: not UTF-8
        first = (str(error).splitlines() or [""])[0]
        return [], f"cannot be read ({type(error).__name__}: {first})"
    task, params = _at(data, "hydra", "overrides", "task"), _at(data, "hydra", "sweeper", "params")
    if not isinstance(task, list) or not isinstance(params or {}, dict):
        return [], "is empty or not the hydra.overrides.task and hydra.sweeper Hydra writes"
    try:
        return sweep_jobs(params or {}, [str(o) for o in task]), None
    except Exception as error:  # a sweeper we cannot expand here
        return [], f"holds a sweep this command cannot expand ({error})"


def _at(node: Any, *keys: str) -> Any:
    """``node[k1][k2]...``, or None where a level is missing or not a mapping."""
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node
