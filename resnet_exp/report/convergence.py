"""Has a run's training error levelled off? Measured from its per-step rows: the mean training
error over the last `LATE_FRACTION` of its steps against the same number of steps just before. A
run is *still falling* when that fall exceeds `STILL_FALLING_PP` and twice its standard error.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from resnet_exp.tracking.record import STEP_ERR

LATE_FRACTION = 0.15  # the end of training that is compared with the stretch before it
STILL_FALLING_PP = 2.0  # a fall (percentage points) below this counts as levelled off


@dataclass(frozen=True)
class Convergence:
    """The training error's fall over the last `LATE_FRACTION` of steps (pp; positive = falling)."""

    fall_pp: float
    stderr_pp: float

    @property
    def still_falling(self) -> bool:
        return self.fall_pp > STILL_FALLING_PP and self.fall_pp > 2 * self.stderr_pp


def _window(rows: Sequence[dict[str, Any]], start: float, end: float) -> list[float]:
    return [
        float(r[STEP_ERR])
        for r in rows
        if start < r["step"] <= end and math.isfinite(float(r[STEP_ERR]))
    ]


def convergence(
    step_rows: Sequence[dict[str, Any]], total_steps: int | None = None
) -> Convergence | None:
    """The late fall of one run's training error; None without enough per-step rows (at least two
    in each of the two stretches)."""
    rows = [r for r in step_rows if isinstance(r.get("step"), int) and STEP_ERR in r]
    if not rows:
        return None
    total = total_steps or max(r["step"] for r in rows)
    late_start = total * (1 - LATE_FRACTION)
    late = _window(rows, late_start, total)
    before = _window(rows, late_start - total * LATE_FRACTION, late_start)
    if len(late) < 2 or len(before) < 2:
        return None
    fall = statistics.fmean(before) - statistics.fmean(late)
    stderr = math.sqrt(
        statistics.variance(before) / len(before) + statistics.variance(late) / len(late)
    )
    return Convergence(fall, stderr)
