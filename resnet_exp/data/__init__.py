"""Datasets as device-ready batches: ``DataModule`` is the one entry point the app instantiates.

``DataModule`` (and torch with it) is imported on first use, so the torch-free dataset facts
(:mod:`resnet_exp.data.facts`) can be read by the config layer before torch is imported.
"""

from typing import Any

from resnet_exp.data.errors import DataConfigError, DatasetNotFound, DatasetUnreadable
from resnet_exp.data.facts import DATASETS

__all__ = ["DATASETS", "DataConfigError", "DataModule", "DatasetNotFound", "DatasetUnreadable"]


def __getattr__(name: str) -> Any:
    if name == "DataModule":
        from resnet_exp.data.module import DataModule

        return DataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
