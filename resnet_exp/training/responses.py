"""Layer responses (He et al. 2015, Fig. 7): the std of every 3x3 layer's output on fixed images.

The response is a 3x3 conv's output after its BatchNorm, before the addition and ReLU, found by
forward hooks without knowing block types. Eval mode, fp32, the first `images` validation images
(else test), so every run of a sweep sees the same inputs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resnet_exp.tracking.record import write_responses

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger("resnet_exp")


def _is_3x3(module: nn.Module) -> bool:
    from torch import nn

    return isinstance(module, nn.Conv2d) and tuple(module.kernel_size) == (3, 3)


class _Moments:
    """Running count, sum and sum of squares (float64) of one layer's response elements."""

    def __init__(self) -> None:
        self.count, self.total, self.squares = 0, 0.0, 0.0

    def add(self, tensor: torch.Tensor) -> None:
        values = tensor.detach().double()
        self.count += values.numel()
        self.total += float(values.sum())
        self.squares += float((values * values).sum())

    def std(self) -> float:
        mean = self.total / self.count
        return math.sqrt(max(self.squares / self.count - mean * mean, 0.0))


def layer_responses(model: nn.Module, batches: Iterable[torch.Tensor]) -> list[dict[str, Any]]:
    """Std (over all elements of all given images) of each 3x3 layer's response, network order:
    [{"layer": 1-based index, "name": the conv's module name, "std": float}, ...]."""
    import torch
    from torch import nn

    names = {module: name for name, module in model.named_modules()}
    order: list[str] = []  # conv names in the order they first ran
    moments: dict[str, _Moments] = {}
    pending: dict[str, Any] = {}  # the last 3x3 conv output not yet closed by a BatchNorm

    def close_pending() -> None:
        if pending:
            moments[pending["name"]].add(pending["out"])
            pending.clear()

    def on_conv(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        close_pending()
        name = names[module]
        if name not in moments:
            moments[name] = _Moments()
            order.append(name)
        pending.update(name=name, out=output)

    def on_norm(_module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        if pending and inputs and inputs[0] is pending["out"]:
            moments[pending["name"]].add(output)
            pending.clear()
        else:
            close_pending()

    handles = []
    for module in model.modules():
        if _is_3x3(module):
            handles.append(module.register_forward_hook(on_conv))
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            handles.append(module.register_forward_hook(on_norm))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for x in batches:
                model(x)
                close_pending()
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return [
        {"layer": i, "name": name, "std": moments[name].std()} for i, name in enumerate(order, 1)
    ]


def fixed_images(data: Any, images: int) -> Iterator[torch.Tensor]:
    """The first `images` validation images (test images without a validation split), in batches
    as the data module yields them; the same for every run with the same data config."""
    for split in ("val", "test"):
        left = images
        for x, _y in data.eval_batches(split):
            if left <= 0:
                return
            yield x[:left].float()
            left -= x.shape[0]
        if left < images:
            return


def measure_and_write(model: nn.Module, data: Any, images: int, run_dir: Path) -> Path | None:
    """Measure the responses on the fixed images and write `<run_dir>/layer_responses.csv`."""
    if images <= 0:
        return None
    rows = layer_responses(model, fixed_images(data, images))
    if not rows:
        return None
    path = write_responses(Path(run_dir), rows)
    log.info("layer responses of %d 3x3 layers written to %s", len(rows), path)
    return path
