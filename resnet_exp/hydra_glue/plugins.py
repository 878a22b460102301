"""Our Hydra plugins (the sweeper, and with the ``scale`` extra the SLURM launcher) registered by
hand; only the entry point calls it, so nothing the plugins import comes back here."""

from __future__ import annotations


def register_plugins() -> None:
    """Make our sweeper (and, with the ``scale`` extra, our SLURM launcher and its config schema)
    known to Hydra. Hydra finds plugins by walking ``hydra_plugins``' folders, which misses a
    package installed in editable mode (``pip install -e``); registering them by hand (Hydra's
    public ``Plugins.register``) works for every kind of install."""
    from hydra.core.plugins import Plugins

    plugins = Plugins.instance()  # first: the scan re-executes the modules of Hydra's plugins
    from hydra_plugins.resnet_exp_launcher._sweeper import ResnetExpSweeper

    plugins.register(ResnetExpSweeper)
    try:
        from hydra_plugins.resnet_exp_launcher._slurm import SlurmLauncher
    except ImportError as error:  # no `scale` extra: hydra/launcher=slurm is refused up front
        if not (error.name or "").startswith(("submitit", "hydra_plugins.hydra_submitit")):
            raise
    else:
        plugins.register(SlurmLauncher)
