"""The checkpoint check element by element: one bad element (NaN, inf, a negative running
variance) in one tensor is refused, the largest finite values are kept; each counter at its
boundary. Properties: any finite state with consistent counters passes, and poisoning any single
element of any tensor is refused naming that tensor."""

from __future__ import annotations

import copy
import functools
import math
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from torch import nn

from resnet_exp.training.checkpoint import CorruptCheckpoint
from resnet_exp.training.checkpoint_check import check_contents

PATH = Path("/runs/x/checkpoints/last.pt")
SPE = 8  # steps per epoch
F32_MAX = torch.finfo(torch.float32).max


def trained_state() -> dict:
    return copy.deepcopy(_trained_state())


@functools.cache
def _trained_state() -> dict:
    """The state of a conv + BatchNorm + linear net after ``SPE + 3`` SGD steps with momentum
    (every kind of tensor a checkpoint holds: weights, running statistics, a step counter,
    momenta), its counters those of a run that took them."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(12, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(SPE + 3):
        opt.zero_grad()
        model(torch.randn(4, 1, 4, 4)).sum().backward()
        opt.step()
    return {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "epoch": 1,
        "step": SPE + 3,
        "step_in_epoch": 3,
        "wall_time_s": 2.5,
    }


def at(**counters: int | float) -> dict:
    """The trained state with other counters, its BatchNorm batch count following ``step``."""
    state = {**trained_state(), **counters}
    if state["step"] < 2**63:  # beyond, a BatchNorm count cannot follow: the run's counters only
        state["model"]["1.num_batches_tracked"] = torch.tensor(state["step"])
    else:
        del state["model"]["1.num_batches_tracked"]
    return state


def check(state: dict, same: bool = True) -> None:
    check_contents(PATH, state, SPE, same_config=same)


def refused(state: dict, same: bool = True) -> str:
    """The refusal's message; an assertion (not a crash) when the check lets the state through."""
    try:
        check(state, same)
    except CorruptCheckpoint as refusal:
        return str(refusal)
    raise AssertionError("the check let through a state no finished training step writes")


def float_tensors(state: dict) -> list[tuple[str, torch.Tensor]]:
    found = [(f"model.{k}", v) for k, v in state["model"].items() if v.is_floating_point()]
    for index, buffers in state["optimizer"]["state"].items():
        found += [(f"optimizer.state.{index}.{k}", v) for k, v in buffers.items()]
    return found


def test_an_intact_state_passes() -> None:
    check(trained_state())


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    "name", ["model.1.running_var", "model.1.running_mean", "model.0.weight", "optimizer.state.0"]
)
def test_one_non_finite_element_is_refused(name: str, bad: float) -> None:
    """One element of one tensor, not the whole tensor: a check of 'some element finite' or of
    the tensor's sum over a NaN and an opposite inf would pass these."""
    state = trained_state()
    if name.startswith("model."):
        tensor = state["model"][name.removeprefix("model.")]
    else:
        tensor = state["optimizer"]["state"][0]["momentum_buffer"]
    tensor.view(-1)[-1] = bad
    assert name in refused(state)


def test_the_largest_finite_values_are_kept() -> None:
    state = trained_state()
    for _, tensor in float_tensors(state):
        tensor.view(-1)[0] = F32_MAX
        tensor.view(-1)[-1] = -F32_MAX if tensor.numel() > 1 else F32_MAX
    state["model"]["1.running_var"].fill_(F32_MAX)  # a variance may be huge, never negative
    check(state)


def test_a_single_negative_running_variance_is_refused_and_zero_is_kept() -> None:
    """BatchNorm's running variance is an average of variances: never below 0 (at eval a
    negative one takes the square root of a negative number)."""
    state = trained_state()
    state["model"]["1.running_var"][1] = 0.0
    check(state)
    state["model"]["1.running_var"][1] = -1e-30
    assert "model.1.running_var" in refused(state)


def test_integer_tensors_are_not_checked_for_finiteness() -> None:
    state = trained_state()
    assert state["model"]["1.num_batches_tracked"].dtype == torch.int64
    state["model"]["1.num_batches_tracked"].fill_(torch.iinfo(torch.int64).max)
    check(state, same=False)  # under the same config it must equal the step (tested below)


# -- counters ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["epoch", "step", "step_in_epoch"])
@pytest.mark.parametrize("value", [-1, True, 1.0, "1", None])
def test_a_counter_that_is_not_a_count_is_refused(key: str, value: object) -> None:
    state = {**trained_state(), key: value}
    assert f"{key}={value!r}" in refused(state, same=False)


def test_counters_at_zero_and_the_largest_valid_values_pass() -> None:
    check(at(epoch=0, step=0, step_in_epoch=0, wall_time_s=0.0))
    huge = 2**62
    last = {"epoch": huge, "step": huge * SPE + SPE - 1, "step_in_epoch": SPE - 1}
    check(at(**last, wall_time_s=sys.float_info.max))


def test_step_in_epoch_at_the_epochs_length_is_refused_one_below_passes() -> None:
    check(at(epoch=2, step=2 * SPE + SPE - 1, step_in_epoch=SPE - 1))
    state = {**trained_state(), "epoch": 2, "step": 3 * SPE, "step_in_epoch": SPE}
    assert f"step_in_epoch={SPE} of an epoch of {SPE} steps" in refused(state)


@pytest.mark.parametrize("delta", [-1, 1])
def test_a_step_count_off_by_one_is_refused_under_the_same_config_only(delta: int) -> None:
    state = {**trained_state(), "step": SPE + 3 + delta}
    assert f"step={SPE + 3 + delta} where epoch=1" in refused(state)
    check(state, same=False)  # another config has other epochs: its counters are its own


@pytest.mark.parametrize("count", [-1, SPE + 2, SPE + 4])
def test_a_batchnorm_batch_count_other_than_the_step_is_refused(count: int) -> None:
    """One training forward per step: each BatchNorm layer has counted exactly ``step`` batches
    (a negative one is refused under any config)."""
    state = trained_state()
    state["model"]["1.num_batches_tracked"] = torch.tensor(count)
    assert "model.1.num_batches_tracked" in refused(state)
    if count >= 0:
        check(state, same=False)


def test_an_optimizer_step_count_above_the_run_or_negative_is_refused() -> None:
    """Adam counts its steps (a float tensor): at most the run's step, a whole number >= 0."""
    state = trained_state()
    cases = ((SPE + 3.0, True), (0.0, True), (SPE + 4.0, False), (-1.0, False), (1.5, False))
    for count, ok in cases:
        state["optimizer"]["state"][0]["step"] = torch.tensor(count)
        if ok:
            check(state)
        else:
            assert "optimizer.state.0.step" in refused(state)


@pytest.mark.parametrize("last", [SPE + 2, SPE + 4, -1, None])
def test_a_scheduler_step_other_than_the_run_step_is_refused(last: object) -> None:
    state = {**trained_state(), "scheduler": {"last_epoch": last}}
    assert "last_epoch" in refused(state)
    check({**state, "scheduler": {"last_epoch": SPE + 3}})


@pytest.mark.parametrize("wall", [-1e-300, math.inf, math.nan, "1"])
def test_an_impossible_wall_time_is_refused(wall: object) -> None:
    assert "wall_time_s=" in refused({**trained_state(), "wall_time_s": wall})


# -- properties --------------------------------------------------------------------------------

finite32 = st.floats(-F32_MAX, F32_MAX, allow_nan=False, width=32)


@st.composite
def states(draw: st.DrawFn) -> dict:
    """A model and optimizer state of 1-3 float tensors of 1-6 finite elements each, with
    counters consistent for `SPE` steps per epoch."""
    shapes = draw(st.lists(st.integers(1, 6), min_size=1, max_size=3))
    model = {
        f"w{i}": torch.tensor(draw(st.lists(finite32, min_size=n, max_size=n)))
        for i, n in enumerate(shapes)
    }
    momenta = {"momentum_buffer": torch.tensor(draw(st.lists(finite32, min_size=1, max_size=4)))}
    epoch = draw(st.integers(0, 10**6))
    within = draw(st.integers(0, SPE - 1))
    return {
        "model": model,
        "optimizer": {"state": {0: momenta}, "param_groups": [{"lr": 0.1, "params": [0]}]},
        "epoch": epoch,
        "step": epoch * SPE + within,
        "step_in_epoch": within,
        "wall_time_s": draw(st.floats(0, sys.float_info.max)),
    }


@given(states())
def test_every_finite_consistent_state_passes(state: dict) -> None:
    check(state)


@given(states(), st.data(), st.sampled_from([math.nan, math.inf, -math.inf]))
@example(
    {
        "model": {"w0": torch.tensor([1.0, 2.0])},
        "optimizer": {"state": {}},
        "epoch": 0,
        "step": 0,
        "step_in_epoch": 0,
    },
    None,
    math.nan,
).via("one NaN at the end of a finite tensor")
def test_any_single_non_finite_element_is_refused_by_name(
    state: dict, data: st.DataObject | None, bad: float
) -> None:
    tensors = [(f"model.{k}", v) for k, v in state["model"].items()]
    tensors += [
        (f"optimizer.state.{i}.{k}", v)
        for i, buffers in state["optimizer"]["state"].items()
        for k, v in buffers.items()
    ]
    if data is None:
        name, tensor, index = tensors[0][0], tensors[0][1], tensors[0][1].numel() - 1
    else:
        name, tensor = data.draw(st.sampled_from(tensors))
        index = data.draw(st.integers(0, tensor.numel() - 1))
    tensor[index] = bad
    assert f"non-finite values in {name}" in refused(state)


@given(st.integers(1, 50), st.integers(0, 10**9), st.integers(0, 10**3), st.integers(-3, 3))
def test_counters_pass_exactly_when_step_is_epoch_times_length_plus_offset(
    spe: int, epoch: int, within: int, delta: int
) -> None:
    state = {"epoch": epoch, "step_in_epoch": within, "step": max(epoch * spe + within + delta, 0)}
    consistent = within < spe and state["step"] == epoch * spe + within
    try:
        check_contents(PATH, state, spe, same_config=True)
        passed = True
    except CorruptCheckpoint:
        passed = False
    assert passed == consistent
