"""Properties of the report's statistics over many inputs: every interval contains its estimate,
an error rate's interval stays within 0-100%, more seeds never widen the t multiplier; and the
record readers keep every whole row when one byte or one field is spoiled."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from resnet_exp.report.stats import PERCENT, bounded, contrast, contrast_parts, interval, spread
from resnet_exp.tracking.record import RunSummary, read_metrics_file

# error rates as a report sees them: multiples of 0.01 pp (a 10,000-image test set). Values apart
# by ~1e-114 pp make Welch-Satterthwaite's squared terms underflow to 0 (ZeroDivisionError in
# stats._satterthwaite): no split of real images gives them.
percent = st.integers(0, 10_000).map(lambda k: k / 100)
replicates = st.lists(percent, min_size=2, max_size=8)


def multiplier(estimate: float, high: float, standard_error: float) -> float:
    return (high - estimate) / standard_error


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # nearly equal replicates
@given(replicates)
@example([0.0, 100.0]).via("the widest two-seed spread")
@example([100.0, 100.0, 100.0]).via("identical replicates at the top")
def test_a_mean_error_rates_interval_contains_it_and_stays_within_0_to_100(
    values: list[float],
) -> None:
    found = spread(values)
    assert found.ci_low <= found.mean <= found.ci_high
    cut = bounded(found, *PERCENT)
    assert 0.0 <= cut.ci_low <= cut.mean <= cut.ci_high <= 100.0


@given(replicates.filter(lambda v: max(v) - min(v) > 1e-3), st.integers(2, 4))
def test_more_seeds_never_widen_the_t_multiplier_of_a_mean(values: list[float], k: int) -> None:
    """The same replicates seen k times: same mean, about the same std, more seeds; the interval's
    multiplier of the standard error (Student's t at n - 1 df) must not grow."""
    few, many = spread(values), spread(values * k)
    t_few = multiplier(few.mean, few.ci_high, few.std / math.sqrt(few.n))
    t_many = multiplier(many.mean, many.ci_high, many.std / math.sqrt(many.n))
    assert t_many <= t_few + 1e-9


groups = st.lists(replicates, min_size=2, max_size=4)
# contrast weights as depth_weights gives them: order one (tiny ones underflow as above)
weights = st.lists(st.integers(-200, 200).map(lambda k: k / 100), min_size=4, max_size=4)


@given(groups, weights)
def test_a_contrasts_interval_contains_its_estimate(
    data: list[list[float]], w: list[float]
) -> None:
    effect = contrast(data, w[: len(data)])
    assert effect.ci_low <= effect.estimate <= effect.ci_high


@given(groups.filter(lambda g: all(max(x) - min(x) > 1e-3 for x in g)), weights, st.integers(2, 3))
def test_more_seeds_never_widen_a_contrasts_t_multiplier(
    data: list[list[float]], w: list[float], k: int
) -> None:
    ws = [x if abs(x) > 1e-3 else 1.0 for x in w[: len(data)]]
    few, many = contrast_parts(data, ws), contrast_parts([g * k for g in data], ws)
    t_few = multiplier(few.estimate, interval(few).ci_high, math.sqrt(few.variance))
    t_many = multiplier(many.estimate, interval(many).ci_high, math.sqrt(many.variance))
    assert many.df >= few.df and t_many <= t_few + 1e-9


# -- record readers: one byte, one field -----------------------------------------------------------


def test_one_spoilt_byte_loses_only_its_own_row(tmp_path: Path) -> None:
    rows = [{"epoch": e, "val/err": 10.0 * e} for e in (1, 2, 3)]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    middle = text.index("\n") + 1  # first byte of the second row
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(text[:middle].encode() + b"\xff" + text[middle + 1 :].encode())
    found = read_metrics_file(path)
    assert found.rows == [rows[0], rows[2]] and found.torn == [2]


def test_one_field_of_the_wrong_kind_is_dropped_and_the_rest_kept() -> None:
    written = {"status": "completed", "seed": 3, "epochs": 7, "steps": 2**62, "wall_time_s": 0.0}
    assert RunSummary.from_json(written).steps == 2**62  # the largest counts are kept
    for key, wrong in [("seed", True), ("epochs", "7"), ("wall_time_s", [1.0])]:
        summary = RunSummary.from_json({**written, key: wrong})
        kept = {k: getattr(summary, k) for k in written if k != key}
        assert getattr(summary, key) is None and kept == {
            k: v for k, v in written.items() if k != key
        }
