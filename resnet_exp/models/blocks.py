"""Residual blocks and their plain (shortcut-free) twins; each class carries the facts
(``expansion``, ``layers``, ``residual``, ``preact``) the network lays out a stage by, so nothing
branches on block type.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, bias-free because BatchNorm follows."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, bias-free because BatchNorm follows."""
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class Block(nn.Module):
    """Common interface of all blocks; subclasses set the class facts below."""

    name: ClassVar[str]
    expansion: ClassVar[int] = 1
    layers: ClassVar[int] = 2
    residual: ClassVar[bool] = True
    preact: ClassVar[bool] = False

    def __init__(self, shortcut: nn.Module | None) -> None:
        super().__init__()
        if not self.residual and shortcut is not None:
            raise ValueError(f"{type(self).__name__} is a plain block and takes no shortcut")
        self.shortcut = shortcut

    def last_norm(self) -> nn.Module:
        """The BatchNorm closing the residual branch (zero-initialised on request)."""
        raise NotImplementedError


class BasicBlock(Block):
    """Two 3x3 convs; the shortcut is added before the last ReLU (He et al. 2015, Fig. 2)."""

    name = "basic"

    def __init__(
        self, in_channels: int, width: int, stride: int = 1, shortcut: nn.Module | None = None
    ) -> None:
        super().__init__(shortcut)
        self.conv1 = conv3x3(in_channels, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + (x if self.shortcut is None else self.shortcut(x))
        return self.relu(out)

    def last_norm(self) -> nn.Module:
        return self.bn2


class Bottleneck(Block):
    """1x1 reduce -> 3x3 (carrying the stride) -> 1x1 expand x4, BN after each conv."""

    name = "bottleneck"
    expansion = 4
    layers = 3

    def __init__(
        self, in_channels: int, width: int, stride: int = 1, shortcut: nn.Module | None = None
    ) -> None:
        super().__init__(shortcut)
        self.conv1 = conv1x1(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, width * self.expansion)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.residual:
            out = out + (x if self.shortcut is None else self.shortcut(x))
        return self.relu(out)

    def last_norm(self) -> nn.Module:
        return self.bn3


class PreActBlock(Block):
    """BN-ReLU-conv order with a clean identity path (He et al. 2016, "Identity Mappings").

    A projection shortcut sees the pre-activated input, as in the paper; an identity or zero-pad
    shortcut sees the raw input so the identity path stays untouched.
    """

    name = "preact"
    preact = True

    def __init__(
        self, in_channels: int, width: int, stride: int = 1, shortcut: nn.Module | None = None
    ) -> None:
        super().__init__(shortcut)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        out = self.conv2(self.relu(self.bn2(self.conv1(pre))))
        if self.shortcut is None:
            return out + x
        projects = any(isinstance(m, nn.Conv2d) for m in self.shortcut.modules())
        return out + self.shortcut(pre if projects else x)

    def last_norm(self) -> nn.Module:
        return self.bn2


class PlainBlock(BasicBlock):
    """BasicBlock without any shortcut: the plain net of the degradation experiment."""

    name = "plain"
    residual = False


class PlainBottleneck(Bottleneck):
    """Bottleneck without any shortcut."""

    name = "plain_bottleneck"
    residual = False


class ZeroPadShortcut(nn.Module):
    """Option A: identity with a strided slice and zero channels appended; no parameters."""

    def __init__(self, out_channels: int, stride: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        missing = self.out_channels - x.shape[1]
        if missing == 0:
            return x
        pad = x.new_zeros(x.shape[0], missing, x.shape[2], x.shape[3])
        return torch.cat([x, pad], dim=1)

    def extra_repr(self) -> str:
        return f"out_channels={self.out_channels}, stride={self.stride}"


def projection_shortcut(
    in_channels: int, out_channels: int, stride: int, with_norm: bool = True
) -> nn.Module:
    """Options B and C: a strided 1x1 conv (with BN, except before a pre-activated block's sum)."""
    conv = conv1x1(in_channels, out_channels, stride)
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels)) if with_norm else nn.Sequential(conv)
