"""Sweep folders: one per sweep, claimed once in the launching process.

:func:`claim_sweep_dir` resolves ``hydra.sweep.dir`` once in the entry point, creates it atomically
(``<dir>-2``, ``<dir>-3``, ... when a sweep started in the same second holds it) and appends
``hydra.sweep.dir=<claimed>`` to the command. Launcher processes (joblib workers, SLURM jobs) then
read a plain path instead of re-resolving ``${now:...}`` themselves, which could give them another
second, or another sweep's folder. A job's folder inside it is named by
:func:`resnet_exp.tracking.names.folder_name` (``hydra.sweep.subdir`` in ``conf/config.yaml``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from resnet_exp.hydra_glue.run_dir import claim, exit_cannot_create

if TYPE_CHECKING:
    from resnet_exp.hydra_glue.command import Command


def claim_sweep_dir(command: Command) -> Command:
    """``command`` plus ``hydra.sweep.dir=<a folder of its own>`` when it launches a sweep whose
    folder is not fixed on the command line; ``command`` unchanged otherwise (a single run, a named
    sweep folder, ``--cfg``/``--help``, or a command Hydra will reject with its own message)."""
    if not (command.launches and command.multirun) or command.sweep_dir is not None:
        return command
    if command.hydra is None:  # it did not compose: Hydra reports why in its own words
        return command
    pattern = str(command.hydra.sweep.dir)
    try:
        claimed = claim(pattern)
    except OSError as error:
        exit_cannot_create(pattern, error)
    return command.with_sweep_dir(claimed)
