"""Per-step learning-rate schedules, expressed as fractions of training so they scale with epochs.

Each is a ``LambdaLR`` stepped once per batch. Setting ranges are the config schema's rules; only
what needs the run's step count (a warm-up shorter than the whole run) is checked here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from resnet_exp.errors import UserError


def _with_warmup(
    factor: Callable[[int], float], warmup_steps: int, warmup_factor: float, total_steps: int
) -> Callable[[int], float]:
    """Linear ramp from ``warmup_factor`` to 1 over ``warmup_steps``, then the schedule."""
    if warmup_steps >= total_steps > 0:  # the lr would never reach optimizer.lr
        raise UserError(
            f"scheduler.warmup_steps={warmup_steps} is not shorter than the whole run "
            f"({total_steps} optimizer steps: trainer.epochs x steps per epoch), so the lr would "
            f"never reach optimizer.lr; use a warmup_steps below {total_steps} (0 for none)."
        )
    if warmup_steps <= 0:
        return factor

    def warmed(step: int) -> float:
        if step < warmup_steps:
            return warmup_factor + (1 - warmup_factor) * step / warmup_steps
        return factor(step)

    return warmed


def constant(
    optimizer: Optimizer, total_steps: int, warmup_steps: int = 0, warmup_factor: float = 0.1
) -> LambdaLR:
    return LambdaLR(
        optimizer, _with_warmup(lambda _: 1.0, warmup_steps, warmup_factor, total_steps)
    )


def multistep(
    optimizer: Optimizer, total_steps: int, milestones: Sequence[float] = (0.5, 0.75),
    gamma: float = 0.1, warmup_steps: int = 0, warmup_factor: float = 0.1,
) -> LambdaLR:  # fmt: skip
    """lr x gamma at each milestone fraction of ``total_steps`` (the paper: /10 at 50% and 75%)."""
    steps = [round(m * total_steps) for m in milestones]

    def factor(step: int) -> float:
        return gamma ** sum(step >= s for s in steps)

    return LambdaLR(optimizer, _with_warmup(factor, warmup_steps, warmup_factor, total_steps))


def cosine(
    optimizer: Optimizer, total_steps: int, min_factor: float = 0.0, warmup_steps: int = 0,
    warmup_factor: float = 0.1,
) -> LambdaLR:  # fmt: skip
    """Half-cosine from 1 to ``min_factor`` over the steps after warm-up."""
    span = max(1, total_steps - warmup_steps)

    def factor(step: int) -> float:
        progress = min(1.0, max(0, step - warmup_steps) / span)
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, _with_warmup(factor, warmup_steps, warmup_factor, total_steps))
