"""A data-parallel epoch's running sums: what a mid-epoch checkpoint stores and each rank resumes
with, so a resumed epoch still reports the loss over the whole epoch and all ranks."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from resnet_exp.training.epoch_sums import EpochSums


@dataclass
class TwoEqualRanks:
    """A stand-in for two DDP ranks that hold the same sums: all_reduce doubles them."""

    is_main: bool = True

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.mul_(2)


def one_rank_sums() -> EpochSums:
    sums = EpochSums.zeros(torch.device("cpu"), ["stem", "head"], lr=0.1)
    sums.add(torch.tensor(6.0), torch.tensor(2.0), images=4)
    sums.grads["stem"] += 3.0
    return sums


def test_checkpoint_holds_the_sums_of_all_ranks_and_loads_back() -> None:
    state = one_rank_sums().to_state(TwoEqualRanks())
    assert (state["loss_sum"].item(), state["wrong"].item(), state["seen"]) == (12.0, 4.0, 8)
    assert state["steps_done"] == 1 and state["lr"] == 0.1
    loaded = EpochSums.from_state(state, torch.device("cpu"), lr=0.5)
    metrics = loaded.metrics(None)
    assert metrics["train/loss"] == pytest.approx(12.0 / 8)
    assert metrics["train/err"] == pytest.approx(100.0 * 4 / 8)
    assert metrics["grad_norm/stem"] == pytest.approx(3.0) and metrics["lr"] == 0.1


def test_after_resuming_only_rank_zero_keeps_the_global_sums() -> None:
    state = one_rank_sums().to_state(TwoEqualRanks())
    rank0 = EpochSums.from_state(state, torch.device("cpu"), lr=0.1).for_rank(TwoEqualRanks())
    rank1 = EpochSums.from_state(state, torch.device("cpu"), lr=0.1)
    rank1 = rank1.for_rank(TwoEqualRanks(is_main=False))
    assert (rank0.loss.item(), rank0.seen) == (12.0, 8)
    assert (rank1.loss.item(), rank1.wrong.item(), rank1.seen) == (0.0, 0.0, 0)
    assert rank1.steps == 1  # the step count is the same on every rank


def test_an_older_checkpoint_without_window_or_lr_still_resumes() -> None:
    state = one_rank_sums().to_state()
    del state["window"], state["lr"]
    loaded = EpochSums.from_state(state, torch.device("cpu"), lr=0.05)
    assert loaded.lr == 0.05 and loaded.window.images == 0
