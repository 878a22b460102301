"""One configurable ResNet covering both of the paper's families, every block and shortcut option.
Depth counts the weighted layers on the main path (stem conv + block convs + fc), so a depth and a
block determine the stage layout.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from resnet_exp.errors import UserError
from resnet_exp.models.blocks import Block, ZeroPadShortcut, projection_shortcut
from resnet_exp.models.facts import DEFAULT_FAMILY, FAMILIES, Family, family_of, shortcut_for


class InvalidModel(UserError, ValueError):
    """A block, depth, family or shortcut combination that cannot be built."""


def stage_layout(family: str, block: type[Block], depth: int) -> tuple[int, ...]:
    """Blocks per stage for this depth, or an error listing the depths that fit the block."""
    spec = family_of(family)  # the config layer reports a bad name for users; here: Python callers
    per_block = block.layers
    if spec.layouts is not None:  # a table of depths (the paper's Table 1)
        layout = spec.layouts.get((per_block, depth))
        if layout is None:
            fits = sorted(d for (k, d) in spec.layouts if k == per_block)
            raise InvalidModel(
                f"model.depth={depth} does not fit block {block.name!r} in the {family} family: "
                f"{per_block}-layer blocks build depths {', '.join(map(str, fits))}. Pick one of "
                f"those (model/depth=...), or another block (model/block=...)."
            )
        return layout
    stages = len(spec.widths)
    step = stages * per_block
    n, rest = divmod(depth - 2, step)
    if n < 1 or rest:
        examples = ", ".join(str(step * k + 2) for k in (1, 2, 3, 4, 6, 9, 18))
        raise InvalidModel(
            f"model.depth={depth} does not fit block {block.name!r} in the {family} family: "
            f"{per_block}-layer blocks in {stages} stages need depth {step}n+2 with n >= 1 "
            f"({examples}, ...). Pick such a depth (model/depth=... or model.depth=...), or "
            f"another block (model/block=...)."
        )
    return (n,) * stages


class ResNet(nn.Module):
    """Stem, stages of blocks and a linear head; plain nets are the same network minus shortcuts."""

    def __init__(
        self, block: type[Block], depth: int, family: str = DEFAULT_FAMILY, in_channels: int = 3,
        num_classes: int = 10, shortcut: str | None = None, zero_init_residual: bool = False,
    ) -> None:  # fmt: skip
        super().__init__()
        if not (isinstance(block, type) and issubclass(block, Block)):
            raise InvalidModel(f"model.block must be a Block class, got {block!r}.")
        layout = stage_layout(family, block, depth)
        spec = FAMILIES[family]
        shortcut = shortcut_for(family, shortcut)  # the config layer reports a bad one for users
        self.block, self.depth, self.family, self.shortcut = block, depth, family, shortcut

        self.stem = self._make_stem(block, spec, in_channels)
        channels = spec.widths[0]
        stages = []
        for index, (width, blocks) in enumerate(zip(spec.widths, layout)):
            stride = 1 if index == 0 else 2
            stage, channels = self._make_stage(block, channels, width, blocks, stride)
            stages.append((f"stage{index + 1}", stage))
        self.stages = nn.Sequential(OrderedDict(stages))
        self.head = self._make_head(block, channels, num_classes)
        self.num_features = channels
        self._init_weights(zero_init_residual)

    def _make_stem(self, block: type[Block], spec: Family, in_channels: int) -> nn.Sequential:
        width, kernel = spec.widths[0], spec.stem_kernel
        conv = nn.Conv2d(
            in_channels, width, kernel, stride=spec.stem_stride, padding=kernel // 2, bias=False
        )
        stem: list[tuple[str, nn.Module]] = [("conv", conv)]
        # A pre-activated CIFAR net starts its first block with BN-ReLU, so the stem is a bare conv.
        if not (block.preact and not spec.stem_pool):
            stem += [("bn", nn.BatchNorm2d(width)), ("relu", nn.ReLU(inplace=True))]
        if spec.stem_pool:
            stem.append(("pool", nn.MaxPool2d(3, stride=2, padding=1)))
        return nn.Sequential(OrderedDict(stem))

    def _make_head(self, block: type[Block], channels: int, num_classes: int) -> nn.Sequential:
        head: list[tuple[str, nn.Module]] = []
        if block.preact:  # the last pre-activated block leaves its sum un-normalised
            head += [("bn", nn.BatchNorm2d(channels)), ("relu", nn.ReLU(inplace=True))]
        head += [
            ("pool", nn.AdaptiveAvgPool2d(1)),
            ("flatten", nn.Flatten()),
            ("fc", nn.Linear(channels, num_classes)),
        ]
        return nn.Sequential(OrderedDict(head))

    def _make_stage(
        self, block: type[Block], in_channels: int, width: int, blocks: int, stride: int
    ) -> tuple[nn.Sequential, int]:
        out_channels = width * block.expansion
        layers = []
        for i in range(blocks):
            block_stride = stride if i == 0 else 1
            shortcut = self._make_shortcut(block, in_channels, out_channels, block_stride)
            layers.append(block(in_channels, width, block_stride, shortcut))
            in_channels = out_channels
        return nn.Sequential(*layers), out_channels

    def _make_shortcut(
        self, block: type[Block], in_channels: int, out_channels: int, stride: int
    ) -> nn.Module | None:
        """None means identity (or no shortcut at all, for plain blocks)."""
        if not block.residual:
            return None
        reshapes = stride != 1 or in_channels != out_channels
        if self.shortcut == "C" or (self.shortcut == "B" and reshapes):
            return projection_shortcut(
                in_channels, out_channels, stride, with_norm=not block.preact
            )
        if reshapes:
            return ZeroPadShortcut(out_channels, stride)
        return None

    def _init_weights(self, zero_init_residual: bool) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_residual and self.block.residual:
            # Each residual branch starts as zero, so every block starts as the identity.
            for module in self.modules():
                if isinstance(module, Block):
                    nn.init.zeros_(module.last_norm().weight)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x))

    def forward_head(self, x: Tensor) -> Tensor:
        return self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def parts(self) -> dict[str, nn.Module]:
        """Stem, each stage and the head, in order: the units gradient norms are reported for."""
        return {"stem": self.stem, **dict(self.stages.named_children()), "head": self.head}

    def describe(self) -> dict:
        """Facts about the architecture for run records and W&B tags."""
        return {
            "block": self.block.name, "residual": self.block.residual, "depth": self.depth,
            "family": self.family, "shortcut": self.shortcut if self.block.residual else None,
            "params": sum(p.numel() for p in self.parameters()),
        }  # fmt: skip
