"""The report's figures in one table (file, plot function, caption), and the captions.

Everything that handles a figure reads `FIGURES`; a new figure is a plot function in `plots.py`
and a row here. Captions state what the data show, with the numbers: deepest against shallowest
depth of a kind (gradients), or a residual net against its plain twin of the same depth (responses).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resnet_exp.report.aggregate import RunResult
from resnet_exp.report.plots import (
    plot_degradation,
    plot_gradients,
    plot_layer_responses,
    response_profiles,
)
from resnet_exp.report.study import config_groups
from resnet_exp.tracking.record import GRAD_NORM, KINDS


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _first_epoch_stem(runs: Sequence[RunResult], residual: bool) -> dict[int, float]:
    """Mean first-epoch gradient norm of the earliest stage ("stem"), per depth."""
    by_depth: dict[int, list[float]] = {}
    for run in runs:
        if bool(run.residual) != residual or not run.metrics or run.depth is None:
            continue
        value = run.metrics[0].get(GRAD_NORM + "stem")
        if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
            by_depth.setdefault(run.depth, []).append(float(value))
    return {d: _mean(v) for d, v in sorted(by_depth.items())}


def gradients_caption(runs: Sequence[RunResult]) -> str:
    """What the first-epoch stem gradient norms show, deepest vs shallowest, per family."""
    parts, plain_ratio = [], None
    for kind, residual in KINDS:
        stem = _first_epoch_stem(runs, residual)
        if len(stem) < 2:
            continue
        (d0, g0), (d1, g1) = next(iter(stem.items())), list(stem.items())[-1]
        ratio = g1 / g0
        parts.append(
            f"{kind} {d1}'s stem got {ratio:.2f}× the first-epoch gradient norm of {kind} "
            f"{d0}'s ({g1:.3g} vs {g0:.3g})"
        )
        if not residual:
            plain_ratio = ratio
    if not parts:
        return "Too few depths with gradient norms to compare early-stage gradients."
    means = _means(runs)
    text = "Gradient norm of each stage (stem → head, log scale), mean per epoch"
    text += f"; {means}. " if means else ". "
    text += "; ".join(parts)
    if plain_ratio is None:
        return text
    if plain_ratio < 0.1:
        got = "got over ten times less gradient"
    elif plain_ratio < 1:
        got = "got less gradient, by less than a factor of ten"
    else:
        got = "did not get less gradient, so these measurements show no vanishing gradient"
    return f"{text}. The deeper plain net's early layers {got}."


def responses_caption(profiles: dict[str, dict[str, Any]]) -> str:
    """Residual vs plain layer-response std at each depth both families measured."""
    by = {(e["residual"], e["depth"]): e for e in profiles.values()}
    depths = sorted({d for (res, d) in by if (not res, d) in by and d is not None})
    if not depths:
        return "No depth has layer responses from both a plain and a residual net to compare."
    parts, smaller_everywhere = [], True
    for depth in depths:
        plain, resid = by[(False, depth)]["std"], by[(True, depth)]["std"]
        n = min(len(plain), len(resid))
        below = sum(r < p for p, r in zip(plain[:n], resid[:n]))
        pm, rm = _mean(plain[:n]), _mean(resid[:n])
        smaller_everywhere &= rm < pm and below > n / 2
        parts.append(
            f"depth {depth}: mean std {rm:.3f} residual vs {pm:.3f} plain, residual smaller in "
            f"{below} of {n} layers"
        )
    verdict = "are" if smaller_everywhere else "are not"
    return (
        f"Std of each 3x3 layer's response; {'; '.join(parts)}: residual responses {verdict} "
        "generally smaller than plain ones here."
    )


def _means(runs: Sequence[RunResult], band: bool = True) -> str:
    """What a line (and its band) is where a configuration has several seeds, else ""."""
    reps = max((len(g.runs) for g in config_groups(runs)), default=0)
    if reps < 2:
        return ""
    return f"lines are means over up to {reps} seeds" + (", bands span their min to max" * band)


def degradation_caption(runs: Sequence[RunResult]) -> str:
    """Which numbers the Fig. 6 view draws, from the records."""
    stepped, means = [r for r in runs if r.steps], _means(runs)
    what = "training error at epoch ends (no per-step rows recorded)"
    if stepped:
        points, name = len(stepped[0].steps), stepped[0].name
        what = f"training error every logged step ({points} points in {name}'s run)"
    return (
        f"Dashed: {what}; solid: test error at epoch ends; x-axis: iterations; plain nets in "
        f"orange, residual nets in blue, darker the deeper{'; ' * bool(means)}{means}."
    )


def layer_responses_caption(runs: Sequence[RunResult]) -> str:
    """`responses_caption` of the profiles the layer-responses figure draws."""
    means = _means([r for r in runs if r.ok and r.responses], band=False)
    text = responses_caption(response_profiles(runs))
    return f"{text} {means[:1].upper()}{means[1:]}." if means else text


@dataclass(frozen=True)
class ReportFigure:
    """One figure: `name` keys `ReportResult.plotted` (`<name>_png` its `paths`); `file` is the PNG
    in the sweep directory (its stem the W&B key); `alt` its alt text in report.md; `plot(runs,
    path)` draws it and returns the plotted numbers; `caption(runs)` is the text under it."""

    name: str
    file: str
    alt: str
    plot: Callable[[Sequence[RunResult], Path], dict[str, dict[str, Any]]]
    caption: Callable[[Sequence[RunResult]], str]

    @property
    def path_key(self) -> str:
        """Its key in `ReportResult.paths`."""
        return f"{self.name}_png"

    @property
    def wandb_key(self) -> str:
        """Its key in the W&B report run's history."""
        return Path(self.file).stem


_VS = "plain vs residual"
FIGURES: tuple[ReportFigure, ...] = (
    ReportFigure("degradation", "degradation.png",
                 f"Training and test error against iterations, {_VS}",
                 plot_degradation, degradation_caption),
    ReportFigure("gradients", "gradients.png", f"Per-stage gradient norms, {_VS}",
                 plot_gradients, gradients_caption),
    ReportFigure("responses", "layer_responses.png", f"Layer responses, {_VS}",
                 plot_layer_responses, layer_responses_caption),
)  # fmt: skip
