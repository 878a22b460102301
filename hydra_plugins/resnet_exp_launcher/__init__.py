"""resnet_exp's SLURM launcher for Hydra (``hydra/launcher=slurm``), in Hydra's plugin namespace.

Hydra imports every module of ``hydra_plugins`` at start-up and warns about any that fails to
import. The launcher itself (``_slurm``, skipped by that scan because of its underscore) needs
submitit, which only the ``scale`` extra installs; so this module exposes it only where submitit
is there, and a base install starts without a warning. Without it, ``hydra/launcher=slurm`` is
refused before Hydra starts, with the install command (``resnet_exp.hydra_glue.launchers``).
The sweeper (``_sweeper``, the default ``hydra/sweeper=resnet_exp``) needs only Hydra.
"""

from hydra_plugins.resnet_exp_launcher._sweeper import ResnetExpSweeper

__all__ = ["ResnetExpSweeper"]

_SCALE_EXTRA = ("submitit", "hydra_plugins.hydra_submitit_launcher")

try:
    from hydra_plugins.resnet_exp_launcher._slurm import DeadJobError, SlurmLauncher
except ImportError as error:  # only a missing `scale` extra is expected; anything else is a bug
    if not (error.name or "").startswith(_SCALE_EXTRA):
        raise
else:
    __all__ += ["DeadJobError", "SlurmLauncher"]
