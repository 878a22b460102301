"""Sweep folders: one per sweep, claimed once in the launching process.

:func:`claim_sweep_dir` resolves ``hydra.sweep.dir`` once in the entry point, creates it atomically
(``<dir>-2``, ``<dir>-3``, ... when a sweep started in the same second holds it) and appends
``hydra.sweep.dir=<claimed>`` to the command. Launcher processes (joblib workers, SLURM jobs) then
read a plain path instead of re-resolving ``${now:...}`` themselves, which could give them another
second, or another sweep's folder. A job's folder inside it is found by the job's identity
(:func:`job_dirname`, ``hydra.sweep.subdir`` in ``conf/config.yaml``); a job whose identity
already finished there is not launched at all (:func:`unfinished`), so its folder is not touched.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resnet_exp.hydra_glue.run_dir import claim, exit_cannot_create
from resnet_exp.tracking import identity

if TYPE_CHECKING:
    from resnet_exp.hydra_glue.command import Command

log = logging.getLogger("resnet_exp")


def job_dirname(task: Any, root: Any) -> str:
    """The job's folder in its sweep: the one that holds its identity already (whatever its
    name: an older sweep's, or one named before a new axis was added), else a new one named by
    what sets the job apart from the sweep's other jobs (``identity.folder_name``)."""
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
    from resnet_exp.hydra_glue.sweep_failures import distinguishing
    from resnet_exp.training.job_plan import finished_in

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
