"""Replicate statistics (seeds are replicates): Student's t 95% interval (scipy) for one mean, and
the Welch-Satterthwaite one for a linear contrast of group means (a depth effect, or two's gap).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def _finite(values: Iterable[float | None]) -> np.ndarray:
    return np.asarray(
        [float(v) for v in values if v is not None and math.isfinite(float(v))], dtype=float
    )


@dataclass(frozen=True)
class Spread:
    """n, mean, sample std (ddof 1), min, max and the 95% t-interval of the mean of replicates
    (NaN std and interval with n = 1: one seed says nothing about seed noise)."""

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
    std = float(np.std(xs, ddof=1))  # scipy.stats.tstd warns on identical values
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


def contrast(groups: Sequence[Sequence[float]], weights: Sequence[float]) -> Effect:
    """Σ wᵢ·mean(groupᵢ) with a Welch-Satterthwaite t interval (independent groups, unequal
    variances); scipy gives the t quantile."""
    return interval(contrast_parts(groups, weights))


PERCENT = (0.0, 100.0)  # an error rate's possible range


def bounded(found: Spread | None, low: float, high: float) -> Spread | None:
    """The spread with its interval cut to [low, high]: a mean error rate cannot leave 0-100%, so
    the part of a symmetric t-interval beyond that range is no information and is not shown."""
    if found is None or not math.isfinite(found.ci_low):
        return found
    ci_low, ci_high = min(max(found.ci_low, low), high), max(min(found.ci_high, high), low)
    return replace(found, ci_low=ci_low, ci_high=ci_high)


def depth_weights(depths: Sequence[int]) -> list[float]:
    """Weights that turn per-depth means into the least-squares depth effect across the whole
    range (slope x (deepest - shallowest)); with two depths they are -1 and +1 (deep minus
    shallow), so a two-depth study reads the same as before."""
    ds = np.asarray(depths, dtype=float)
    centred = ds - ds.mean()
    span = float(ds.max() - ds.min())
    return list(centred * span / float(np.sum(centred**2)))


def _satterthwaite(terms: Sequence[float], sizes: Sequence[int]) -> float:
    """Welch-Satterthwaite degrees of freedom; infinite where the squared terms underflow."""
    denominator = sum(t * t / (n - 1) for t, n in zip(terms, sizes))
    return sum(terms) ** 2 / denominator if denominator > 0 else math.inf


def t_quantile(df: float, q: float) -> float:
    """Student's t quantile (scipy), quiet for infinite degrees of freedom."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.t.ppf(q, df))


@dataclass(frozen=True)
class ContrastParts:
    """A linear contrast of group means with what its interval and a power estimate need."""

    estimate: float
    variance: float  # Σ w² s² / n
    df: float
    terms_per_seed: tuple[float, ...]  # w² s² for each group (variance with one seed per group)


def contrast_parts(groups: Sequence[Sequence[float]], weights: Sequence[float]) -> ContrastParts:
    """Estimate, variance and Welch-Satterthwaite degrees of freedom of Σ wᵢ·mean(groupᵢ)."""
    xs = [_finite(g) for g in groups]
    estimate = float(sum(w * np.mean(x) for w, x in zip(weights, xs)))
    if any(x.size < 2 for x in xs):
        return ContrastParts(estimate, math.nan, math.nan, ())
    per_seed = tuple(w * w * float(np.var(x, ddof=1)) for w, x in zip(weights, xs))
    terms = [a / x.size for a, x in zip(per_seed, xs)]
    variance = sum(terms)
    df = _satterthwaite(terms, [x.size for x in xs]) if variance > 0 else math.inf
    return ContrastParts(estimate, variance, df, per_seed)


def interval(parts: ContrastParts) -> Effect:
    """The contrast's estimate with its 95% t interval (NaN bounds without one)."""
    if not math.isfinite(parts.variance):
        return Effect(parts.estimate, math.nan, math.nan)
    if parts.variance == 0:
        return Effect(parts.estimate, parts.estimate, parts.estimate)
    half = t_quantile(parts.df, 0.5 + CONFIDENCE / 2) * math.sqrt(parts.variance)
    return Effect(parts.estimate, parts.estimate - half, parts.estimate + half)


def ratio_interval(
    numerator: ContrastParts, denominator: ContrastParts
) -> tuple[float, float, float]:
    """numerator / denominator with Fieller's 95% interval (the two independent): the ratios r
    for which numerator - r·denominator is within the t quantile (the smaller df) of zero; NaN
    bounds unless the denominator is clearly non-zero (else the interval is unbounded)."""
    a, b = numerator.estimate, denominator.estimate
    ratio = a / b if b != 0 else math.nan
    va, vb = numerator.variance, denominator.variance
    if not (math.isfinite(va) and math.isfinite(vb)) or b == 0:
        return ratio, math.nan, math.nan
    t = t_quantile(min(numerator.df, denominator.df), 0.5 + CONFIDENCE / 2)
    lead = b * b - t * t * vb
    if lead <= 0:
        return ratio, math.nan, math.nan
    root = math.sqrt(max(a * a * vb + b * b * va - t * t * va * vb, 0.0))
    low, high = (a * b - t * root) / lead, (a * b + t * root) / lead
    return ratio, low, high


POWER = 0.8  # the chance the estimated number of seeds settles the claim
MAX_SEEDS = 200


def seeds_needed(parts: ContrastParts, boundary: float, above: bool) -> int | None:
    """Seeds per configuration for the 95% interval to land wholly above (or below) `boundary`
    with 80% power, if the estimate and the observed spread are the truth: |estimate - boundary|
    >= (t_{0.975,df} + t_{0.8,df}) · SE(n), Welch-Satterthwaite df at n seeds per group. None on
    the wrong side of the boundary, or beyond MAX_SEEDS."""
    gap = (parts.estimate - boundary) if above else (boundary - parts.estimate)
    if not parts.terms_per_seed or gap <= 0:
        return None
    per_seed = sum(parts.terms_per_seed)
    if per_seed == 0:
        return 2
    squares = sum(a * a for a in parts.terms_per_seed)
    for n in range(2, MAX_SEEDS + 1):
        df = (n - 1) * per_seed**2 / squares
        quantiles = t_quantile(df, 0.5 + CONFIDENCE / 2) + t_quantile(df, POWER)
        if gap >= quantiles * math.sqrt(per_seed / n):
            return n
    return None
