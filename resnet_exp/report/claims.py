"""The paper's three claims (deeper plain nets train worse, deeper residual nets do not, the
shortcuts avoid the plain penalty), each decided by its 95% interval: "could not tell" (an
*inconclusive* outcome, with the seeds that would settle it) never reads "no". An interval lies
above or below a boundary (0, the margin, one half) only strictly: touching it reads inconclusive.
"""

from __future__ import annotations

from dataclasses import dataclass

from resnet_exp.report.stats import ContrastParts, Effect, interval, ratio_interval, seeds_needed

MARGIN_PP = 5.0  # a depth effect within ±5 pp of training error counts as "no effect"

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
NO_INTERVAL = "no interval"  # one seed per configuration: seed noise unknown


@dataclass(frozen=True)
class Claim:
    """One claim: outcome, effect (pp), and the seeds that would settle it if inconclusive."""

    outcome: str
    effect: Effect
    seeds: int | None = None
    basis: str = ""


def _fewest(*options: int | None) -> int | None:
    found = [n for n in options if n is not None]
    return min(found) if found else None


def rises(parts: ContrastParts, margin: float = MARGIN_PP) -> Claim:
    """'The effect is above zero': reproduced when the interval lies above zero, not reproduced
    when it lies below +margin (no rise bigger than the margin), inconclusive otherwise."""
    effect = interval(parts)
    if not effect.known:
        return Claim(NO_INTERVAL, effect)
    if effect.ci_low > 0:
        return Claim(REPRODUCED, effect)
    if effect.ci_high < margin:
        return Claim(NOT_REPRODUCED, effect)
    seeds = _fewest(seeds_needed(parts, 0.0, above=True), seeds_needed(parts, margin, above=False))
    return Claim(INCONCLUSIVE, effect, seeds)


def stays_below(residual: ContrastParts, gap: ContrastParts, margin: float = MARGIN_PP) -> Claim:
    """'Deeper residual nets do not degrade as plain nets do' (``gap`` = plain effect - residual
    effect), decided by the residual interval (basis 'flat') or the gap's ('below plain'); the
    claim's effect is the residual depth effect."""
    effect, between = interval(residual), interval(gap)
    if not (effect.known and between.known):
        return Claim(NO_INTERVAL, effect)
    if effect.ci_high < margin:
        return Claim(REPRODUCED, effect, basis="flat")
    if between.ci_low > margin:
        return Claim(REPRODUCED, effect, basis="below plain")
    if between.ci_high < margin:
        return Claim(NOT_REPRODUCED, effect)
    seeds = _fewest(
        seeds_needed(residual, margin, above=False),
        seeds_needed(gap, margin, above=True),
        seeds_needed(gap, margin, above=False),
    )
    return Claim(INCONCLUSIVE, effect, seeds)


MOST = 0.5  # "most of the penalty": more than half of it


def share_avoided(plain: ContrastParts, residual: ContrastParts) -> Effect:
    """The share of the plain depth penalty the shortcuts avoid, 1 - residual effect / plain
    effect, with Fieller's 95% interval (the two families' groups are independent); NaN bounds
    when the plain penalty itself is not clearly above zero."""
    ratio, low, high = ratio_interval(residual, plain)
    return Effect(1.0 - ratio, 1.0 - high, 1.0 - low)


def most_avoided(share: Effect) -> str:
    """'The shortcuts avoid most of the plain penalty': reproduced when Fieller's interval of the
    share lies above one half, not reproduced when below, inconclusive otherwise (or unbounded)."""
    if not share.known:
        return INCONCLUSIVE
    if share.ci_low > MOST:
        return REPRODUCED
    if share.ci_high < MOST:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def seed_list(seeds: int) -> str:
    """The override that runs `seeds` replicates: seed=0,1,...,N-1."""
    if seeds > 6:
        return f"seed=0,1,...,{seeds - 1}"
    return "seed=" + ",".join(map(str, range(seeds)))
