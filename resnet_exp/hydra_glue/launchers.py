"""Launchers that need an optional extra: refused before Hydra starts, with the install command.

``hydra/launcher=slurm`` (and submitit's ``local``) come from ``hydra-submitit-launcher``, which
only ``pip install "resnet_exp[scale]"`` brings. Without it Hydra would fail late, with a
traceback about an unknown plugin class, after creating the sweep folder.
"""

from __future__ import annotations

import sys
from importlib.util import find_spec
from typing import TYPE_CHECKING

from resnet_exp.errors import EXIT_USER_ERROR

if TYPE_CHECKING:
    from resnet_exp.hydra_glue.command import Command

# launcher option -> the module it needs
NEEDS_SCALE_EXTRA = {
    "slurm": "hydra_plugins.hydra_submitit_launcher",
    "local": "hydra_plugins.hydra_submitit_launcher",
    "submitit_slurm": "hydra_plugins.hydra_submitit_launcher",
    "submitit_local": "hydra_plugins.hydra_submitit_launcher",
}


def _installed(module: str) -> bool:
    try:
        return find_spec(module) is not None and find_spec("submitit") is not None
    except ImportError:
        return False


def missing_launcher(command: Command) -> str | None:
    """The error for a ``hydra/launcher=<option>`` on the command line whose plugin is missing."""
    option = command.launcher
    if option not in NEEDS_SCALE_EXTRA or _installed(NEEDS_SCALE_EXTRA[option]):
        return None
    return (
        f"hydra/launcher={option} needs submitit and Hydra's submitit launcher, which are not "
        'installed. Install them with the scale extra: pip install "resnet_exp[scale]" (from a '
        'checkout: pip install ".[scale]"), or use hydra/launcher=joblib to run the sweep\'s jobs '
        "side by side on this machine."
    )


def require_launcher_plugins(command: Command) -> None:
    """Exit 2 with one paragraph when a chosen launcher's extra is not installed."""
    message = missing_launcher(command)
    if message is not None:
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR)
