"""Per-layer shapes, parameter counts and FLOPs, measured by running the model once."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from resnet_exp.models.blocks import Block


@dataclass
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    flops: int


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Forward FLOPs for one input of ``input_shape`` (C, H, W); a multiply-add counts as 2."""
    return layer_table(model, input_shape)[1]


def _rows_of(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Report blocks as one row each and every other leaf module on its own."""
    rows: list[tuple[str, nn.Module]] = []
    inside_block: list[str] = []
    for name, module in model.named_modules():
        if not name or any(name.startswith(prefix + ".") for prefix in inside_block):
            continue
        if isinstance(module, Block):
            inside_block.append(name)
            rows.append((name, module))
        elif not list(module.children()):
            rows.append((name, module))
    return rows


def layer_table(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[list[LayerRow], int]:
    """Rows in forward order and the total forward FLOPs for a single image."""
    rows = _rows_of(model)
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        module.register_forward_hook(
            lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:]))
        )
        for name, module in rows
    ]
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        counter = FlopCounterMode(display=False, depth=None)
        with counter, torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    flops_by_module = {
        key.split(".", 1)[1]: sum(counts.values())
        for key, counts in counter.get_flop_counts().items()
        if "." in key
    }
    table = [
        LayerRow(
            name=name,
            kind=type(module).__name__,
            output_shape=shapes.get(name, ()),
            params=sum(p.numel() for p in module.parameters()),
            flops=flops_by_module.get(name, 0),
        )  # fmt: skip
        for name, module in rows
        if name in shapes
    ]
    return table, counter.get_total_flops()


def format_table(rows: list[LayerRow], total_flops: int, model: nn.Module) -> str:
    """A fixed-width table with totals, for the terminal."""
    header = f"{'layer':<28} {'type':<18} {'output shape':<18} {'params':>12} {'FLOPs':>15}"
    lines = [header, "-" * len(header)]
    for row in rows:
        shape = "x".join(map(str, row.output_shape))
        lines.append(
            f"{row.name:<28} {row.kind:<18} {shape:<18} {row.params:>12,} {row.flops:>15,}"
        )
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lines += [
        "-" * len(header),
        f"total params: {params:,} ({trainable:,} trainable, {params * 4 / 2**20:.2f} MiB as fp32)",
        f"forward FLOPs per image: {total_flops:,} ({total_flops / 1e9:.3f} GFLOPs; "
        f"a multiply-add counts as 2, so {total_flops // 2:,} MACs)",
    ]
    return "\n".join(lines)
