"""Where the Hydra config tree is: ``conf/`` beside the package in a source checkout (and an
editable install), ``resnet_exp/conf`` inside an installed wheel (pyproject maps one onto the
other). Looked up by path, not by import, so a checkout on ``PYTHONPATH`` finds its own tree."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def config_dir() -> Path:
    """The folder holding ``config.yaml`` and the config groups."""
    for candidate in (_PACKAGE / "conf", _PACKAGE.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"resnet_exp's config tree (config.yaml) is neither in {_PACKAGE / 'conf'} (installed "
        f"package) nor in {_PACKAGE.parent / 'conf'} (source checkout); reinstall resnet_exp."
    )
