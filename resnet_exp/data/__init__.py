"""Datasets as device-ready batches: ``DataModule`` is the one entry point the app instantiates."""

from resnet_exp.data.errors import DataConfigError, DatasetNotFound, DatasetUnreadable
from resnet_exp.data.module import DataModule
from resnet_exp.data.sources import DATASETS

__all__ = ["DATASETS", "DataConfigError", "DataModule", "DatasetNotFound", "DatasetUnreadable"]
