"""ResNets and plain nets of He et al. 2015 / 2016; the network classes (and torch) are imported
on first use, so the config layer reads :mod:`resnet_exp.models.facts` without torch."""

from importlib import import_module
from typing import Any

from resnet_exp.models.facts import FAMILIES, SHORTCUTS

_LAZY = {
    "BasicBlock": "blocks", "Block": "blocks", "Bottleneck": "blocks", "PlainBlock": "blocks",
    "PlainBottleneck": "blocks", "PreActBlock": "blocks", "ZeroPadShortcut": "blocks",
    "InvalidModel": "resnet", "ResNet": "resnet", "stage_layout": "resnet",
}  # fmt: skip

__all__ = ["FAMILIES", "SHORTCUTS", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"resnet_exp.models.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
