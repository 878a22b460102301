"""What a person watching a fit reads: the plain progress lines outside a terminal (at their
cadence, driven by a fake clock, no timing races) and the epoch line's lr range and image counts."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from resnet_exp.tracking.record import RunRecord
from resnet_exp.training.loop import LoopSettings, Trainer
from resnet_exp.training.progress import LINE_EVERY_S, Progress
from resnet_exp.training.schedules import multistep


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def drive(progress: Progress, clock: FakeClock, steps: int, seconds_per_step: float) -> None:
    """``steps`` optimizer steps of 16 images each; the running loss and error are fixed."""
    with progress.showing(0):
        for step in range(1, steps + 1):
            if (step - 1) % 10 == 0:
                progress.start_epoch(1 + (step - 1) // 10)
            clock.now += seconds_per_step
            progress.step(step, 0.1, 16, lambda: (0.5, 12.5))


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]


def test_plain_lines_every_log_every_steps_with_step_loss_err_lr_rate_and_run_eta(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    progress = Progress(True, 2, 10, every_steps=4, terminal=False, clock=clock)
    with caplog.at_level(logging.INFO, logger="resnet_exp"):
        drive(progress, clock, steps=20, seconds_per_step=1.0)
    shown = lines(caplog)
    assert [int(re.match(r"step (\d+)/20", line)[1]) for line in shown] == [4, 8, 12, 16, 20]
    # 4 steps of 16 images in 4 s; 4 s for 4 of 20 steps leaves 16 s for the whole run
    first = "step 4/20 (epoch 1/2) | loss 0.5000 err 12.50% | lr 0.1 | 16 img/s | ETA 00:16"
    assert shown[0] == first
    assert shown[2].startswith("step 12/20 (epoch 2/2)") and shown[-1].endswith("ETA 00:00")


def test_plain_lines_every_30_s_when_steps_are_slow_or_no_step_cadence_is_set(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    with caplog.at_level(logging.INFO, logger="resnet_exp"):
        drive(Progress(True, 2, 10, terminal=False, clock=clock), clock, 20, seconds_per_step=7.0)
        slow = lines(caplog)
        caplog.clear()
        # a step cadence of 100 is never reached in 20 steps: the ~30 s rule alone
        drive(Progress(True, 2, 10, every_steps=100, terminal=False, clock=clock), clock, 20, 7.0)
    assert LINE_EVERY_S == 30.0
    every_5th = [5, 10, 15, 20]  # 35 s after the last line each time
    assert [int(re.match(r"step (\d+)", line)[1]) for line in slow] == every_5th
    assert [int(re.match(r"step (\d+)", line)[1]) for line in lines(caplog)] == every_5th


@pytest.mark.parametrize("enabled, terminal", [(False, False), (True, True)])
def test_no_plain_lines_when_progress_is_off_or_on_a_terminal(
    caplog: pytest.LogCaptureFixture, enabled: bool, terminal: bool
) -> None:
    clock = FakeClock()
    progress = Progress(enabled, 2, 10, every_steps=1, terminal=terminal, clock=clock)
    with caplog.at_level(logging.INFO, logger="resnet_exp"):
        drive(progress, clock, steps=20, seconds_per_step=60.0)
    assert lines(caplog) == []


class FakeData:
    """Three batches of 16 random images to train on, one to evaluate on."""

    steps_per_epoch = 3

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.batches = [(torch.randn(16, 1, 4, 4, generator=g), torch.arange(16) % 10)
                        for _ in range(3)]  # fmt: skip

    def train_batches(self, epoch: int, start_step: int = 0):
        return iter(self.batches[start_step:])

    def eval_batches(self, split: str):
        return iter(self.batches[:1] if split == "val" else self.batches[:2])


class NoLogger:
    def log(self, metrics: dict, step: int) -> None:
        pass


@pytest.mark.usefixtures("one_thread")
def test_epoch_line_says_the_lr_range_it_ran_and_the_images_of_each_split(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Multistep over 6 steps: /10 at steps 3 and 4 (round(4.5)); epoch 2 runs 0.01, 0.001,
    0.001, and its row keeps the lr of its first step."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = Trainer(model, FakeData(), optimizer, multistep(optimizer, total_steps=6),
                      torch.device("cpu"), RunRecord(tmp_path), NoLogger(),
                      LoopSettings(epochs=2, progress=False))  # fmt: skip
    with caplog.at_level(logging.INFO, logger="resnet_exp"):
        result = trainer.fit()
    epoch_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert [row["lr"] for row in result.rows] == pytest.approx([0.1, 0.01])
    assert " | lr 0.1 | " in epoch_lines[0]
    assert " | lr 0.01 -> 0.001 | " in epoch_lines[1]
    for line in epoch_lines:
        assert re.search(r"train loss \S+ err \S+% \(48 img\) \| val err \S+% \(16 img\) \| "
                         r"test err \S+% \(32 img\)", line), line  # fmt: skip
        assert re.search(r" \| \d+\.\ds \+ eval \d+\.\ds \| \d+ img/s$", line), line
