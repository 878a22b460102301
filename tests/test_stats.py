"""Replicate statistics and the statistically decided verdict, on fake sweeps with known numbers.

Oracles: numbers computed by hand in the test (mean, sample std, t quantiles from tables), and
scipy's own two-sample Welch interval for the four-group contrast.
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
from scipy import stats as sps

from resnet_exp.report.aggregate import RunResult
from resnet_exp.report.stats import contrast, spread
from resnet_exp.report.study import config_groups, family_effect, summary_csv_text
from resnet_exp.report.verdict import family_verdict, headline, verdict_section
from resnet_exp.tracking.identity import configuration

# The issue's measured seeds 0-2 (final training error %, degradation_quick on main).
ISSUE_SEEDS = {
    ("plain", 20): [21.00, 21.73, 19.87],
    ("plain", 56): [47.65, 45.73, 51.47],
    ("basic", 20): [18.22, 16.63, 18.63],
    ("basic", 56): [16.27, 17.88, 19.58],
}


def fake_runs(table: dict[tuple[str, int], list[float | None]]) -> list[RunResult]:
    """One RunResult per (config, seed); None marks a failed replicate."""
    runs = []
    for (block, depth), values in table.items():
        for seed, value in enumerate(values):
            runs.append(
                RunResult(
                    job_dir=Path("."),
                    name=str(len(runs)),
                    job=f"model/block={block},model/depth={depth},seed={seed}",
                    status="completed" if value is not None else "failed",
                    block=block,
                    residual=block != "plain",
                    depth=depth,
                    dataset="fashionmnist",
                    seed=seed,
                    final_train_err=value,
                    best_val_err=None if value is None else value + 1.0,
                    test_err_at_best_val=None if value is None else value + 2.0,
                    config=f"model/block={block},model/depth={depth}",
                )
            )
    return runs


def test_spread_against_hand_computed_values() -> None:
    found = spread([21.00, 21.73, 19.87])
    mean = (21.00 + 21.73 + 19.87) / 3
    std = math.sqrt(sum((x - mean) ** 2 for x in (21.00, 21.73, 19.87)) / 2)
    t_975_df2 = 4.302652729911275  # Student's t table, 97.5% quantile, 2 degrees of freedom
    assert found.n == 3
    assert found.mean == pytest.approx(mean)
    assert found.std == pytest.approx(std)
    assert (found.min, found.max) == (19.87, 21.73)
    assert found.ci_low == pytest.approx(mean - t_975_df2 * std / math.sqrt(3))
    assert found.ci_high == pytest.approx(mean + t_975_df2 * std / math.sqrt(3))


def test_spread_with_one_value_has_no_interval_and_skips_missing() -> None:
    found = spread([None, 8.5, math.nan])
    assert (found.n, found.mean, found.min, found.max) == (1, 8.5, 8.5, 8.5)
    assert math.isnan(found.std) and math.isnan(found.ci_low) and math.isnan(found.ci_high)
    assert spread([None]) is None


def test_four_group_contrast_equals_scipy_welch_for_two_groups() -> None:
    a, b = [47.65, 45.73, 51.47], [21.00, 21.73, 19.87, 20.5]
    two = contrast([a, b], [1.0, -1.0])
    low, high = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (two.ci_low, two.ci_high) == pytest.approx((low, high))
    assert two.estimate == pytest.approx(sum(a) / len(a) - sum(b) / len(b))
    assert not contrast([[1.0], b], [1.0, -1.0]).known


def test_summary_csv_groups_replicates_and_leaves_out_the_failed_one() -> None:
    table = {**ISSUE_SEEDS, ("basic", 56): [16.27, None, 19.58]}
    text = summary_csv_text(fake_runs(table))
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(text)))
    configs = {r["config"]: r for r in rows if r["row"] == "config"}
    assert len(configs) == 4 and sum(r["row"] == "run" for r in rows) == 12
    resnet56 = configs["model/block=basic,model/depth=56"]
    assert (resnet56["n"], resnet56["n_runs"]) == ("2", "3")
    assert float(resnet56["final_train_err_mean"]) == pytest.approx((16.27 + 19.58) / 2)
    assert float(resnet56["final_train_err_std"]) == pytest.approx(
        abs(19.58 - 16.27) / math.sqrt(2)
    )
    assert float(resnet56["test_err_at_best_val_min"]) == pytest.approx(18.27)
    t_975_df1 = 12.706204736174707
    half = t_975_df1 * abs(19.58 - 16.27) / math.sqrt(2) / math.sqrt(2)
    assert float(resnet56["final_train_err_ci_high"]) == pytest.approx((16.27 + 19.58) / 2 + half)
    plain20 = configs["model/block=plain,model/depth=20"]
    assert float(plain20["final_train_err_mean"]) == pytest.approx(20.8666667)
    assert [g.seeds for g in config_groups(fake_runs(ISSUE_SEEDS))][0] == [0, 1, 2]


def test_issue_seeds_pooled_give_the_papers_answer() -> None:
    runs = fake_runs(ISSUE_SEEDS)
    plain, resid = family_effect(runs, False), family_effect(runs, True)
    assert plain.effect.estimate == pytest.approx(27.4167, abs=1e-3)
    assert plain.effect.side == "above"
    assert resid.effect.estimate == pytest.approx(0.0833, abs=1e-3)
    assert resid.effect.side == "spans"
    text = headline(runs)
    assert text.startswith("**Degradation reproduced: deeper plain nets train worse, residual nets")
    assert "+27.42 pp" in text and "avoid 99.7% (95% CI" in text
    assert "no degradation beyond the 5 pp margin: +0.08 pp (95% CI" in text
    assert "do not degrade" not in text and "both families" not in text


def test_the_verdict_starts_with_what_the_seeds_did_then_the_intervals() -> None:
    text = headline(fake_runs(ISSUE_SEEDS))
    plain = (
        "In 3 of 3 seed pairs plain-56 ended with higher final training error than plain-20 (mean "
        "48.28% vs 20.87%); in 2 of 3 seed pairs ResNet-56 ended with higher final training error "
        "than ResNet-20 (mean 17.91% vs 17.83%). Deeper plain nets train worse by +27.42 pp (95% CI"
    )
    assert text.split("**: ", 1)[1].startswith(plain)
    section = "\n".join(verdict_section(fake_runs(ISSUE_SEEDS)))
    assert section.index(plain[:40]) < section.index("Welch") < section.index("Fieller")
    assert section.count("Welch") == 1 and "power estimate" in section


def _setup_runs(table: dict, batch: int, resize: int, first_seed: int) -> list[RunResult]:
    """fake_runs of one setup, each run with the identity a job of it would have."""
    runs = fake_runs(table)
    for run in runs:
        run.seed += first_seed
        run.identity = json.dumps({"~identity": 2, "seed": run.seed, "model.depth": run.depth,
                                   "model.block.path": run.block, "data.batch_size": batch,
                                   "data.resize": resize}, sort_keys=True)  # fmt: skip
        run.configuration = configuration(run.identity)
    return runs


def test_a_verdict_never_pools_two_setups() -> None:
    """A preset at 20x20 and batch 24 extended by 28x28 at batch 128 (issue 31, class 11)."""
    small = _setup_runs(ISSUE_SEEDS, 24, 20, 0)
    flat = {k: [v[0] + 0.1 * i for i in range(3)] for k, v in ISSUE_SEEDS.items()}
    large = _setup_runs(flat, 128, 28, 3)
    text = headline(small + large)
    assert text.startswith("**No verdict**: this sweep holds 2 setups")
    assert "data.batch_size=24, data.resize=20; data.batch_size=128, data.resize=28" in text
    section = verdict_section(small + large)
    assert "### Setup: data.batch_size=24, data.resize=20" in section
    assert "### Setup: data.batch_size=128, data.resize=28" in section
    assert section[section.index("### Setup: data.batch_size=24, data.resize=20") + 2] == headline(
        small
    )
    assert headline(small).startswith("**Degradation reproduced")
    assert "n = 3 seeds per depth" in family_verdict(small, False)
    # two residual configurations at one depth in one setup: no verdict, and why
    preact = [replace(r, block="preact", configuration="other") for r in small if r.residual]
    assert "residual depth 20 (basic, preact)" in headline(small + preact)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_seed_alone_is_provisional(seed: int) -> None:
    runs = fake_runs({k: [v[seed]] for k, v in ISSUE_SEEDS.items()})
    text = headline(runs)
    assert text.startswith("**Provisional (one seed per configuration")
    assert "both families" not in text
    assert "seed noise unknown" in family_verdict(runs, residual=True)


CLEAR = {  # plain rises far beyond noise, residual flat
    ("plain", 20): [10.0, 10.4, 9.8],
    ("plain", 56): [20.0, 20.5, 19.7],
    ("basic", 20): [8.0, 8.3, 7.9],
    ("basic", 56): [8.1, 7.8, 8.2],
}
NOISE = {  # both rise by a fraction of their seed spread
    ("plain", 20): [10.0, 12.0, 8.0],
    ("plain", 56): [10.5, 12.5, 8.5],
    ("basic", 20): [8.0, 10.0, 6.0],
    ("basic", 56): [8.4, 10.4, 6.4],
}
RESIDUAL_BETTER = {  # plain rises, deeper residual clearly trains better
    ("plain", 20): [10.0, 10.4, 9.8],
    ("plain", 56): [20.0, 20.5, 19.7],
    ("basic", 20): [8.0, 8.3, 7.9],
    ("basic", 56): [5.0, 5.2, 4.9],
}
BOTH = {  # both rise clearly, far beyond the 5 pp margin, and by the same amount
    ("plain", 20): [10.0, 10.4, 9.8],
    ("plain", 56): [18.0, 18.3, 17.8],
    ("basic", 20): [8.0, 8.3, 7.9],
    ("basic", 56): [16.0, 16.2, 15.9],
}


def test_verdict_flips_only_when_the_intervals_say_so() -> None:
    clear = fake_runs(CLEAR)
    assert "Degradation reproduced" in headline(clear)
    assert "degrades with depth (the interval lies above zero)" in family_verdict(clear, False)
    assert "no degradation beyond 5 pp" in family_verdict(clear, True)

    noise = fake_runs(NOISE)  # +0.5 pp with a 2 pp spread: could not tell, which is not "no"
    assert family_effect(noise, False).effect.estimate == pytest.approx(0.5)
    assert headline(noise).startswith("**Inconclusive**")
    assert "not reproduced" not in headline(noise).lower()
    assert "inconclusive" in family_verdict(noise, False)

    better = fake_runs(RESIDUAL_BETTER)
    assert "no degradation beyond 5 pp" in family_verdict(better, True)
    assert "-3.03 pp" in headline(better)

    both = fake_runs(BOTH)
    assert headline(both).startswith("**Degradation in both families**")


def test_statistics_table_names_configurations_by_what_tells_them_apart() -> None:
    from resnet_exp.report.markdown import stats_table

    runs = fake_runs({("plain", 20): [21.0, 22.0], ("basic", 56): [18.0, 17.0]})
    for run in runs:  # a preset's sweep: every job shares the experiment override
        shared = ["experiment=degradation_quick", "trainer.precision=32"]
        run.overrides = [f"model/block={run.block}", f"model/depth={run.depth}", *shared]
        run.config = ",".join(run.overrides)
    rows = [line for line in stats_table(runs) if line.startswith("| model/")]
    assert [row.split(" | ")[0] for row in rows] == [
        "| model/block=plain,model/depth=20",
        "| model/block=basic,model/depth=56",
    ]


def test_summary_csv_neutralises_formulas_but_keeps_negative_numbers() -> None:
    """A cell a spreadsheet would evaluate starts with ' (issue 31, class 13)."""
    runs = fake_runs(ISSUE_SEEDS)
    runs[0].job, runs[1].job, runs[2].job = '=HYPERLINK("http://x","y")', "-2+3", "@SUM(A1)"
    runs[3].config, runs[3].final_train_err = "+cmd|' /C calc'!A0", -1.25
    rows = list(csv.DictReader(io.StringIO(summary_csv_text(runs))))
    jobs = {r["job"] for r in rows if r["row"] == "run"}
    assert {'\'=HYPERLINK("http://x","y")', "'-2+3", "'@SUM(A1)"} <= jobs
    assert "'+cmd|' /C calc'!A0" in {r["config"] for r in rows}
    assert "-1.25" in {r["final_train_err"] for r in rows}  # a number stays a number
    for cell in (v for r in rows for v in r.values() if v[:1] and v[0] in "=+-@"):
        float(cell)  # only a number may start so


def test_identical_replicates_spread_without_a_warning() -> None:
    """Two seeds with the same error (58 of 64 images twice) printed scipy's 'catastrophic
    cancellation' warning at a sweep's end."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = spread([90.625, 90.625])
    assert (found.std, found.ci_low, found.ci_high) == (0.0, 90.625, 90.625)
