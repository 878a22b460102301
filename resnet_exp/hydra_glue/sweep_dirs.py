"""Sweep folders: one per sweep (claimed once, in the launching process), one per configuration.

* ``${resnet_exp.job_dirname:${hydra.job.override_dirname}}`` names a job's folder after its own
  overrides (Hydra's ``override_dirname``: sorted, so the order on the command line does not
  matter), made safe for file names, cut short, and suffixed with a hash of the full overrides so
  two configurations never share a folder. A re-run of the same sweep command finds every job's
  earlier attempt whatever the order or number of values.
* :func:`claim_sweep_dir` resolves ``hydra.sweep.dir`` once in the entry point, creates it
  atomically (``<dir>-2``, ``<dir>-3``, ... when a sweep started in the same second holds it) and
  appends ``hydra.sweep.dir=<claimed>`` to the overrides. Launcher processes (joblib workers, SLURM
  jobs) then read a plain path instead of re-resolving ``${now:...}`` themselves, which could give
  them another second, or another sweep's folder.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from pathlib import Path

JOB_DIRNAME_RESOLVER = "resnet_exp.job_dirname"
_READABLE = 80  # characters of the overrides kept in the folder name before the hash
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]+")
# Flags with which Hydra launches nothing (so no sweep folder may be created).
_NO_LAUNCH = {"--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i", "--version",
              "--shell-completion", "-sc"}  # fmt: skip


def job_dirname(override_dirname: str) -> str:
    """``model/depth=8,seed=1`` -> ``model_depth=8,seed=1-<hash>``; ``default-<hash>`` for none."""
    readable = _UNSAFE.sub("_", override_dirname).strip("._-")[:_READABLE].rstrip("._-,")
    digest = hashlib.sha1(override_dirname.encode("utf-8")).hexdigest()[:8]
    return f"{readable or 'default'}-{digest}"


def explicit_sweep_dir(args: list[str]) -> str | None:
    """The ``hydra.sweep.dir=`` the command line gives as a fixed folder (none for a pattern such
    as ``outputs/${now:%H}``, which names a new folder each time)."""
    for arg in reversed(args):
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+") == "hydra.sweep.dir":
            return None if "${" in value else value
    return None


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


def claim_sweep_dir(args: list[str]) -> list[str]:
    """``args`` plus ``hydra.sweep.dir=<a folder of its own>`` when they launch a sweep whose
    folder is not fixed on the command line; ``args`` unchanged otherwise (a single run, a named
    sweep folder, ``--cfg``/``--help``, or arguments Hydra will reject with its own message)."""
    if any(a in _NO_LAUNCH for a in args) or explicit_sweep_dir(args) is not None:
        return args
    flagged = any(a in ("--multirun", "-m") for a in args)
    if not flagged and not any(
        a.startswith(("experiment=", "+experiment=", "hydra.mode=")) for a in args
    ):
        return args
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from resnet_exp.hydra_glue.compose import compose

    overrides = [a for a in args if not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
        hydra = compose(fixed, return_hydra_config=True).hydra
        multirun = flagged or str(OmegaConf.select(hydra, "mode")).endswith("MULTIRUN")
        pattern = str(hydra.sweep.dir)
    except Exception:  # a typo or an unknown option: Hydra reports it in its own words
        return args
    if not multirun:
        return args
    from resnet_exp.hydra_glue.run_dir import exit_cannot_create

    try:
        claimed = claim(pattern)
    except OSError as error:
        exit_cannot_create(pattern, error)
    return [*args, f"hydra.sweep.dir={_quoted(claimed)}"]


def _quoted(path: str) -> str:
    """A path as a Hydra override value (quoted unless it is plain)."""
    if re.fullmatch(r"[A-Za-z0-9._/+@-]+", path):
        return path
    return "'" + path.replace("\\", "\\\\").replace("'", "\\'") + "'"
