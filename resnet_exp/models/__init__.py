"""ResNets and plain nets of He et al. 2015 / 2016, built from a block class and a depth."""

from resnet_exp.models.blocks import (
    BasicBlock,
    Block,
    Bottleneck,
    PlainBlock,
    PlainBottleneck,
    PreActBlock,
    ZeroPadShortcut,
)
from resnet_exp.models.resnet import FAMILIES, InvalidModel, ResNet, stage_layout

__all__ = [
    "FAMILIES",
    "BasicBlock",
    "Block",
    "Bottleneck",
    "InvalidModel",
    "PlainBlock",
    "PlainBottleneck",
    "PreActBlock",
    "ResNet",
    "ZeroPadShortcut",
    "stage_layout",
]
