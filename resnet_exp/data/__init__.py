"""Datasets as device-ready batches; ``DataModule`` (and torch) is imported on first use."""

from typing import Any

from resnet_exp.data.errors import DataConfigError, DatasetNotFound, DatasetUnreadable
from resnet_exp.data.facts import DATASETS

__all__ = ["DATASETS", "DataConfigError", "DataModule", "DatasetNotFound", "DatasetUnreadable"]


def __getattr__(name: str) -> Any:
    if name == "DataModule":
        from resnet_exp.data.module import DataModule

        return DataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
