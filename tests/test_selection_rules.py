"""Every selection rule at its tie and its boundary: the best epoch (strictly lower wins, a tie
keeps the earlier epoch, in the trainer and in the report's recomputation alike), the divergence
check (one non-finite element of one weight or buffer; when it is due), "still falling" (exactly
at the threshold is levelled off; the window edges) and the claims' outcomes at exactly the
equivalence margin (an interval touching a boundary does not lie beyond it)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from torch import nn

from resnet_exp.report import aggregate, claims
from resnet_exp.report.claims import (
    INCONCLUSIVE,
    MARGIN_PP,
    MOST,
    NOT_REPRODUCED,
    REPRODUCED,
    most_avoided,
    rises,
    stays_below,
)
from resnet_exp.report.convergence import (
    LATE_FRACTION,
    STILL_FALLING_PP,
    Convergence,
    convergence,
)
from resnet_exp.report.stats import ContrastParts, Effect
from resnet_exp.tracking.record import STEP_ERR
from resnet_exp.training.loop import Trainer
from resnet_exp.training.policy import StepPolicy

# -- best epoch ------------------------------------------------------------------------------------

# errors on a 500-image split are multiples of 0.2 pp: small integers scaled make ties common
errors = st.lists(st.integers(0, 6).map(lambda k: 0.2 * k), min_size=1, max_size=12)


def trainer_best(rows: list[dict]) -> dict:
    """The rows through the trainer's own rule, one epoch at a time, as fit() feeds it."""
    holder = SimpleNamespace(best=None)
    for row in rows:
        Trainer._update_best(holder, row)
    return holder.best


@given(errors)
@example([0.4, 0.2, 0.2]).via("a later tie")
@example([0.2, 0.2]).via("a tie at the start")
def test_best_epoch_is_the_first_with_the_lowest_validation_error(vals: list[float]) -> None:
    rows = [{"epoch": i + 1, "val/err": v, "test/err": 50.0 + i} for i, v in enumerate(vals)]
    first_lowest = vals.index(min(vals)) + 1
    assert trainer_best(rows)["epoch"] == first_lowest
    run = aggregate.RunResult(Path("."), ".", "", "completed", metrics=rows)
    aggregate._fill_results(run, None)  # a summary.json without "best": recomputed from rows
    assert (run.best_val_err, run.test_err_at_best_val) == (min(vals), 50.0 + first_lowest - 1)


def test_without_a_validation_split_best_is_by_training_error_and_ties_keep_the_first() -> None:
    rows = [{"epoch": e, "train/err": v, "test/err": t} for e, v, t in [(1, 9, 0), (2, 9, 5)]]
    assert trainer_best(rows)["epoch"] == 1


# -- divergence ------------------------------------------------------------------------------------


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))


@pytest.mark.parametrize("where", ["0.weight", "1.running_var", "1.running_mean", "1.bias"])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_one_non_finite_element_of_one_weight_or_buffer_is_divergence(
    where: str, bad: float
) -> None:
    model = net()
    with torch.no_grad():
        model.state_dict()[where].view(-1)[-1] = bad
    policy = StepPolicy(0, 0, torch.device("cpu"))
    assert policy.check_diverged(torch.zeros(()), model) and policy.diverged


def test_the_largest_finite_loss_and_weights_are_not_divergence() -> None:
    model = net()
    big = torch.finfo(torch.float32).max
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.view(-1)[0] = big
    policy = StepPolicy(0, 0, torch.device("cpu"))
    assert not policy.check_diverged(torch.tensor(big), model)
    assert policy.check_diverged(torch.tensor(math.inf))  # the loss alone, at one step past it


@pytest.mark.parametrize(
    ("every", "check", "step", "due"),
    [(5, 0, 5, True), (5, 0, 4, False), (5, 0, 6, False), (0, 3, 3, True), (0, 3, 4, False),
     (5, 3, 9, True), (5, 3, 10, True), (5, 3, 11, False), (0, 0, 1, False)],
)  # fmt: skip
def test_checks_and_checkpoints_are_due_at_exact_multiples(
    every: int, check: int, step: int, due: bool
) -> None:
    """A mid-epoch checkpoint at every multiple of checkpoint_every_steps, always after a finite
    check; a check alone at every multiple of finite_check_steps; 0 turns either off."""
    policy = StepPolicy(every, check, torch.device("cpu"))
    checkpoint = policy.checkpoint_due(step)
    assert checkpoint == bool(every and step % every == 0)
    assert policy.check_due(step, checkpoint) == due


# -- still falling ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fall", "stderr", "falling"),
    [(STILL_FALLING_PP, 0.0, False), (STILL_FALLING_PP + 1e-9, 0.0, True),
     (3.0, 1.5, False), (3.0, 1.5 - 1e-9, True), (-5.0, 0.0, False)],
)  # fmt: skip
def test_still_falling_is_strictly_above_the_threshold_and_twice_the_stderr(
    fall: float, stderr: float, falling: bool
) -> None:
    assert Convergence(fall, stderr).still_falling is falling


def test_the_late_window_starts_after_the_step_at_its_edge() -> None:
    """Over 100 steps the late window is steps 86-100 and the one before 71-85: the row at step 85
    is in the earlier window, the one at step 70 in neither."""
    assert LATE_FRACTION == 0.15  # the steps above are this fraction's
    rows = [{"step": s, STEP_ERR: 10.0} for s in range(60, 101)]
    rows[85 - 60][STEP_ERR] = 40.0  # lifts the earlier window's mean by 30 / 15 = 2 pp
    rows[70 - 60][STEP_ERR] = 99.0  # outside both windows: changes nothing
    found = convergence(rows)
    assert found is not None and found.fall_pp == pytest.approx(2.0)
    rows[85 - 60][STEP_ERR] = 10.0
    rows[100 - 60][STEP_ERR] = 25.0  # the last step is in the late window
    assert convergence(rows).fall_pp == pytest.approx(-1.0)


def test_a_fall_of_exactly_the_threshold_with_no_noise_is_levelled_off() -> None:
    rows = [{"step": s, STEP_ERR: 12.0 if s <= 85 else 10.0} for s in range(1, 101)]
    found = convergence(rows)
    assert found == Convergence(STILL_FALLING_PP, 0.0) and not found.still_falling


# -- claims at exactly the margin ------------------------------------------------------------------


def scripted(monkeypatch: pytest.MonkeyPatch, *effects: Effect) -> list[ContrastParts]:
    """Parts whose interval is the given effect (the interval itself is tests/test_stats.py's)."""
    parts = [ContrastParts(e.estimate, 1.0, 4.0, (1.0, 1.0, 1.0, 1.0)) for e in effects]
    table = {id(p): e for p, e in zip(parts, effects)}
    monkeypatch.setattr(claims, "interval", lambda p: table[id(p)])
    return parts


@pytest.mark.parametrize(
    ("low", "high", "outcome"),
    [(0.0, 3.0, NOT_REPRODUCED), (1e-9, 3.0, REPRODUCED), (-1.0, MARGIN_PP, INCONCLUSIVE),
     (-1.0, MARGIN_PP - 1e-9, NOT_REPRODUCED), (0.0, MARGIN_PP, INCONCLUSIVE)],
)  # fmt: skip
def test_rises_at_zero_and_at_the_margin(
    monkeypatch: pytest.MonkeyPatch, low: float, high: float, outcome: str
) -> None:
    (parts,) = scripted(monkeypatch, Effect((low + high) / 2, low, high))
    assert rises(parts).outcome == outcome


@pytest.mark.parametrize(
    ("residual", "gap", "outcome", "basis"),
    [((-1.0, MARGIN_PP), (-1.0, 20.0), INCONCLUSIVE, ""),
     ((-1.0, MARGIN_PP - 1e-9), (-1.0, 20.0), REPRODUCED, "flat"),
     ((6.0, 9.0), (MARGIN_PP, 20.0), INCONCLUSIVE, ""),
     ((6.0, 9.0), (MARGIN_PP + 1e-9, 20.0), REPRODUCED, "below plain"),
     ((6.0, 9.0), (-3.0, MARGIN_PP), INCONCLUSIVE, ""),
     ((6.0, 9.0), (-3.0, MARGIN_PP - 1e-9), NOT_REPRODUCED, "")],
)  # fmt: skip
def test_stays_below_at_the_margin(
    monkeypatch: pytest.MonkeyPatch,
    residual: tuple[float, float],
    gap: tuple[float, float],
    outcome: str,
    basis: str,
) -> None:
    effects = [Effect(sum(b) / 2, *b) for b in (residual, gap)]
    claim = stays_below(*scripted(monkeypatch, *effects))
    assert (claim.outcome, claim.basis) == (outcome, basis)


@pytest.mark.parametrize(
    ("low", "high", "outcome"),
    [(MOST, 0.9, INCONCLUSIVE), (MOST + 1e-9, 0.9, REPRODUCED), (0.1, MOST, INCONCLUSIVE),
     (0.1, MOST - 1e-9, NOT_REPRODUCED), (math.nan, math.nan, INCONCLUSIVE)],
)  # fmt: skip
def test_most_of_the_penalty_avoided_at_exactly_one_half(
    low: float, high: float, outcome: str
) -> None:
    assert most_avoided(Effect(0.5, low, high)) == outcome


@pytest.mark.parametrize(
    ("low", "high", "side"),
    [(0.0, 1.0, "spans"), (1e-9, 1.0, "above"), (-1.0, 0.0, "spans"), (-1.0, -1e-9, "below")],
)
def test_an_interval_touching_zero_spans_it(low: float, high: float, side: str) -> None:
    assert Effect(0.0, low, high).side == side
