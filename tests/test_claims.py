"""The verdict's three outcomes, the power estimate, Fieller's share interval, bounded error-rate
intervals, the depth slope and the still-falling mark, each against a hand computation or an
independent implementation (numpy's least squares, scipy's Welch interval, t-table values)."""

from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from resnet_exp.report.claims import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    REPRODUCED,
    rises,
    share_avoided,
)
from resnet_exp.report.convergence import convergence
from resnet_exp.report.stats import (
    bounded,
    contrast_parts,
    depth_weights,
    ratio_interval,
    seeds_needed,
    spread,
)
from resnet_exp.report.study import decide, family_effect, summary_csv_text
from resnet_exp.report.verdict import family_verdict, headline

sys.path.insert(0, str(Path(__file__).parent))
from test_stats import fake_runs  # noqa: E402


def test_depth_weights_give_numpys_least_squares_slope_across_the_range() -> None:
    depths = [20, 32, 44, 56]
    means = [12.0, 15.5, 16.0, 21.0]
    slope = np.polyfit(depths, means, 1)[0]
    effect = sum(w * m for w, m in zip(depth_weights(depths), means))
    assert effect == pytest.approx(slope * (56 - 20))
    assert depth_weights([20, 56]) == pytest.approx([-1.0, 1.0])


def test_two_depth_contrast_is_scipys_welch_interval() -> None:
    shallow, deep = [20.1, 21.7, 19.9], [48.0, 45.2, 51.9, 47.7]
    parts = contrast_parts([shallow, deep], depth_weights([20, 56]))
    low, high = sps.ttest_ind(deep, shallow, equal_var=False).confidence_interval(0.95)
    effect = rises(parts).effect
    assert (effect.ci_low, effect.ci_high) == pytest.approx((low, high))


def test_seeds_needed_matches_a_hand_computation_from_t_tables() -> None:
    # Two groups, sample std 1 each, weights -1/+1: SE(n) = sqrt(2/n), df = 2(n-1).
    # n=4: (t.975,6 + t.8,6) * sqrt(2/4) = (2.447 + 0.906) * 0.7071 = 2.371
    # n=5: (t.975,8 + t.8,8) * sqrt(2/5) = (2.306 + 0.889) * 0.6325 = 2.021
    # so an estimated gap of 2.2 pp from the boundary needs 5 seeds per configuration.
    a, b = [-1.0, 0.0, 1.0], [1.2, 2.2, 3.2]
    parts = contrast_parts([a, b], [-1.0, 1.0])
    assert parts.estimate == pytest.approx(2.2)
    assert seeds_needed(parts, 0.0, above=True) == 5
    assert seeds_needed(parts, 10.0, above=True) is None  # estimate below the boundary


def test_fieller_interval_matches_the_quadratic_solved_by_hand() -> None:
    num = contrast_parts([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]], [-1.0, 1.0])  # 2 ± sqrt(2/3)
    den = contrast_parts([[0.0, 1.0, 2.0], [8.0, 10.0, 12.0]], [-1.0, 1.0])  # 9 ± sqrt(5/3)
    ratio, low, high = ratio_interval(num, den)
    t = sps.t.ppf(0.975, min(num.df, den.df))
    # (a - r b)^2 = t^2 (va + r^2 vb) at both ends of the interval
    for r in (low, high):
        lhs = (num.estimate - r * den.estimate) ** 2
        rhs = t * t * (num.variance + r * r * den.variance)
        assert lhs == pytest.approx(rhs)
    assert ratio == pytest.approx(2 / 9) and low < ratio < high
    share = share_avoided(den, num)  # 1 - num/den
    assert (share.ci_low, share.ci_high) == pytest.approx((1 - high, 1 - low))


def test_fieller_has_no_bounded_interval_when_the_plain_penalty_is_noise() -> None:
    num = contrast_parts([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]], [-1.0, 1.0])
    den = contrast_parts([[0.0, 5.0, 10.0], [1.0, 6.0, 11.0]], [-1.0, 1.0])
    assert all(math.isnan(x) for x in ratio_interval(num, den)[1:])


def test_an_error_rate_interval_stays_inside_0_to_100_percent() -> None:
    wide = spread([75.0, 99.0, 52.0])
    assert wide.ci_high > 100  # the raw t-interval leaves the possible range
    cut = bounded(wide, 0.0, 100.0)
    assert cut.ci_high == 100.0 and cut.ci_low == wide.ci_low and cut.mean == wide.mean
    rows = _csv(summary_csv_text(fake_runs({("plain", 56): [75.0, 99.0, 52.0]})))
    assert float(rows[0]["final_train_err_ci_high"]) == 100.0


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _groups(deltas: dict[str, list[float]]) -> dict[tuple[str, int], list[float]]:
    return {
        ("plain", 20): [10.0, 10.5, 9.5],
        ("plain", 56): deltas["plain"],
        ("basic", 20): [8.0, 8.5, 7.5],
        ("basic", 56): deltas["basic"],
    }


def test_each_outcome_of_each_claim() -> None:
    clear = fake_runs(_groups({"plain": [30.0, 31.0, 29.0], "basic": [7.5, 8.0, 8.5]}))
    plain = family_effect(clear, False)
    assert rises(plain.parts).outcome == REPRODUCED
    verdict = decide(clear)
    assert verdict.residual_claim.outcome == REPRODUCED
    assert verdict.residual_claim.basis == "flat" and verdict.most == REPRODUCED

    # Not reproduced by equivalence: the plain interval lies below +5 pp.
    flat = fake_runs(_groups({"plain": [10.2, 10.6, 9.8], "basic": [8.0, 8.4, 7.6]}))
    claim = rises(family_effect(flat, False).parts)
    assert claim.outcome == NOT_REPRODUCED and claim.effect.ci_high < 5
    text = headline(flat)
    assert text.startswith("**Degradation not reproduced**: In 3 of 3 seed pairs plain-56 ended")
    assert "The interval rules out a plain depth effect larger than +5 pp" in text

    # Inconclusive: the interval spans zero and +5 pp; the text gives the seeds to run.
    noisy = fake_runs(_groups({"plain": [4.0, 24.0, 14.0], "basic": [8.0, 8.5, 7.5]}))
    claim = rises(family_effect(noisy, False).parts)
    assert claim.outcome == INCONCLUSIVE and claim.seeds is not None and claim.seeds > 3
    text = headline(noisy)
    assert text.startswith("**Inconclusive**") and f"about {claim.seeds} seeds" in text
    assert "not reproduced" not in text.lower()

    # The residual family rising far beyond the margin: degradation in both families.
    both = fake_runs(_groups({"plain": [30.0, 31.0, 29.0], "basic": [28.0, 29.0, 27.0]}))
    assert decide(both).residual_claim.outcome == NOT_REPRODUCED
    assert headline(both).startswith("**Degradation in both families**")
    assert "less than half" in headline(both)

    # The residual family rising, but less than the plain one by more than the margin: the
    # issue's "lies below the plain one by a margin".
    less = fake_runs(_groups({"plain": [40.0, 41.0, 39.0], "basic": [12.0, 18.0, 15.0]}))
    claim = decide(less).residual_claim
    assert claim.outcome == REPRODUCED and claim.basis == "below plain"
    assert "less than the plain nets' rise by" in headline(less)

    # The residual family neither inside nor outside the margin: inconclusive, with seeds.
    unsure = fake_runs(_groups({"plain": [20.0, 21.0, 19.0], "basic": [4.0, 18.0, 11.0]}))
    resid_claim = decide(unsure).residual_claim
    assert resid_claim.outcome == INCONCLUSIVE and resid_claim.seeds is not None
    assert "the residual family is inconclusive" in headline(unsure)
    assert "inconclusive (the interval includes +5 pp, and the gap" in family_verdict(unsure, True)


def _step_rows(values: list[float], every: int = 10) -> list[dict]:
    return [{"step": every * (i + 1), "train_step/err": v} for i, v in enumerate(values)]


def test_convergence_is_the_fall_over_the_last_15_percent_of_steps() -> None:
    # 40 rows over 400 steps: the last 15% (steps 341-400) are rows 35-40, the 15% before
    # (steps 281-340) rows 29-34.
    values = [50.0] * 28 + [30.0, 31.0, 29.0, 30.0, 31.0, 29.0] + [20.0, 21.0, 19.0] * 2
    found = convergence(_step_rows(values), 400)
    assert found.fall_pp == pytest.approx(10.0)
    assert found.still_falling
    level = [50.0] * 28 + [20.0, 21.0, 19.0] * 4
    assert not convergence(_step_rows(level), 400).still_falling
    assert convergence(_step_rows([50.0, 40.0]), 20) is None  # too few rows to tell


def test_a_verdict_resting_on_still_falling_runs_says_so() -> None:
    runs = fake_runs(_groups({"plain": [30.0, 31.0, 29.0], "basic": [7.5, 8.0, 8.5]}))
    falling = [50.0] * 28 + [40.0] * 6 + [30.0] * 6
    runs[3].steps = _step_rows(falling)  # plain-56, seed 0
    runs[3].metrics = [{"epoch": 1, "step": 400}]
    text = headline(runs)
    assert "still falling at the end" in text and "1 run " in text
    run_rows = [r for r in _csv(summary_csv_text(runs)) if r["row"] == "run"]
    marked = [r for r in run_rows if r["still_falling"] == "1"]
    assert len(marked) == 1 and float(marked[0]["late_fall_pp"]) == pytest.approx(10.0)
