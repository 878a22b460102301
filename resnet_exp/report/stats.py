"""Replicate statistics: a 95% interval for each configuration's mean and for the depth effects.

Seeds are replicates, so every number the verdict uses is a mean over seeds with an interval that
says how far seed noise alone could move it. scipy does the statistics (Student's t for one mean,
Welch's t for a difference of two means); the difference of two depth effects (four group means) is
the same Welch-Satterthwaite construction with a linear contrast, and equals scipy's two-sample
Welch interval when given two groups (tests/test_stats.py checks that).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def _finite(values: Iterable[float | None]) -> np.ndarray:
    return np.asarray(
        [float(v) for v in values if v is not None and math.isfinite(float(v))], dtype=float
    )


@dataclass(frozen=True)
class Spread:
    """n, mean, sample std (ddof 1), min, max and the 95% t-interval of the mean of replicates.

    With n = 1 std and the interval are NaN: one seed says nothing about seed noise.
    """

    n: int
    mean: float
    std: float
    min: float
    max: float
    ci_low: float
    ci_high: float


def spread(values: Iterable[float | None]) -> Spread | None:
    """Describe the finite values (None and NaN are left out); None when there are none."""
    xs = _finite(values)
    if xs.size == 0:
        return None
    mean = float(np.mean(xs))
    if xs.size == 1:
        return Spread(1, mean, math.nan, mean, mean, math.nan, math.nan)
    std = float(stats.tstd(xs))
    if std == 0.0:  # identical replicates: the t-interval degenerates to the point
        low = high = mean
    else:
        low, high = stats.ttest_1samp(xs, 0.0).confidence_interval(CONFIDENCE)
    return Spread(
        int(xs.size), mean, std, float(xs.min()), float(xs.max()), float(low), float(high)
    )


@dataclass(frozen=True)
class Effect:
    """A difference of means with its 95% interval (NaN bounds when a group has one value)."""

    estimate: float
    ci_low: float
    ci_high: float

    @property
    def known(self) -> bool:
        """Whether the interval exists (every group had at least two replicates)."""
        return math.isfinite(self.ci_low) and math.isfinite(self.ci_high)

    @property
    def side(self) -> str:
        """'above' / 'below' when the whole interval lies above / below zero, 'spans' when it
        includes zero, 'unknown' without an interval."""
        if not self.known:
            return "unknown"
        if self.ci_low > 0:
            return "above"
        if self.ci_high < 0:
            return "below"
        return "spans"


def welch(a: Sequence[float], b: Sequence[float]) -> Effect:
    """mean(a) − mean(b) with Welch's t interval (unequal variances), from scipy."""
    xa, xb = _finite(a), _finite(b)
    estimate = float(np.mean(xa) - np.mean(xb))
    if xa.size < 2 or xb.size < 2:
        return Effect(estimate, math.nan, math.nan)
    if np.var(xa) == 0 and np.var(xb) == 0:
        return Effect(estimate, estimate, estimate)
    low, high = stats.ttest_ind(xa, xb, equal_var=False).confidence_interval(CONFIDENCE)
    return Effect(estimate, float(low), float(high))


def contrast(groups: Sequence[Sequence[float]], weights: Sequence[float]) -> Effect:
    """Σ wᵢ·mean(groupᵢ) with a Welch-Satterthwaite t interval (independent groups, unequal
    variances); scipy gives the t quantile."""
    xs = [_finite(g) for g in groups]
    estimate = float(sum(w * np.mean(x) for w, x in zip(weights, xs)))
    if any(x.size < 2 for x in xs):
        return Effect(estimate, math.nan, math.nan)
    terms = [w * w * float(np.var(x, ddof=1)) / x.size for w, x in zip(weights, xs)]
    variance = sum(terms)
    if variance == 0:
        return Effect(estimate, estimate, estimate)
    df = variance**2 / sum(t * t / (x.size - 1) for t, x in zip(terms, xs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df)) * math.sqrt(variance)
    return Effect(estimate, estimate - half, estimate + half)
