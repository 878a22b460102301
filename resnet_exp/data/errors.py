"""Data-layer errors: each message is one paragraph naming the value and what would fix it."""

from __future__ import annotations

from resnet_exp.errors import UserError


class DataConfigError(UserError, ValueError):
    """A data option has a value the data layer cannot use (zero batch size, huge val_size...)."""


class DatasetNotFound(UserError, FileNotFoundError):
    """The files are not under data.root, and neither download nor a local copy supplied them."""


class DatasetUnreadable(UserError, RuntimeError):
    """The files are there but torchvision cannot read them (truncated, corrupt, wrong format)."""
