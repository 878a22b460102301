"""Learning-rate schedules: the lr of every optimizer step against values worked out by hand.

Each schedule is built the way a run builds it (the composed ``scheduler`` config, instantiated and
called with the optimizer and the total step count), then stepped once per optimizer step.
The expected numbers are literals, computed by hand from the paper's rule, not by the code.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from cli import run_cli

from resnet_exp.hydra_glue.compose import compose

BASE_LR = 0.1


def lrs_of(overrides: list[str], total_steps: int, base_lr: float = BASE_LR) -> list[float]:
    """The lr used by each of ``total_steps`` optimizer steps under the composed scheduler."""
    from hydra.utils import instantiate

    cfg = compose(overrides)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    scheduler = instantiate(cfg.scheduler)(optimizer, total_steps=total_steps)
    seen = []
    with warnings.catch_warnings():  # no optimizer.step(): only the lr is of interest
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(total_steps):
            seen.append(optimizer.param_groups[0]["lr"])
            scheduler.step()
    return seen


def test_multistep_divides_by_ten_at_half_and_three_quarters() -> None:
    # 8 steps: milestones at 50% (step 4) and 75% (step 6)
    expected = [0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    assert lrs_of(["scheduler=multistep"], 8) == pytest.approx(expected, rel=1e-12)
    # 12 steps: steps 6 and 9
    expected = [0.1] * 6 + [0.01] * 3 + [0.001] * 3
    assert lrs_of(["scheduler=multistep"], 12) == pytest.approx(expected, rel=1e-12)


def test_multistep_custom_milestones_and_gamma() -> None:
    lrs = lrs_of(["scheduler=multistep", "scheduler.milestones=[0.25]", "scheduler.gamma=0.5"], 8)
    assert lrs == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05], rel=1e-12)


def test_constant_none_keeps_the_lr() -> None:
    assert lrs_of(["scheduler=none"], 6) == pytest.approx([0.1] * 6, rel=1e-12)


def test_linear_warmup_then_constant() -> None:
    # factor 0.1 -> 1 over 4 steps: 0.1, 0.325, 0.55, 0.775, then 1
    lrs = lrs_of(["scheduler=none", "scheduler.warmup_steps=4", "scheduler.warmup_factor=0.1"], 6)
    assert lrs == pytest.approx([0.01, 0.0325, 0.055, 0.0775, 0.1, 0.1], rel=1e-12)


def test_linear_warmup_then_multistep() -> None:
    lrs = lrs_of(["scheduler=multistep", "scheduler.warmup_steps=2"], 8)
    assert lrs == pytest.approx([0.01, 0.055, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rel=1e-12)


def test_cosine_half_period_from_lr_to_zero() -> None:
    # 0.5 * (1 + cos(pi * k / 8)) for k = 0..7, times 0.1
    expected = [0.1, 0.0961940, 0.0853553, 0.0691342, 0.05, 0.0308658, 0.0146447, 0.0038060]
    assert lrs_of(["scheduler=cosine"], 8) == pytest.approx(expected, abs=1e-7)


def test_cosine_with_floor_and_warmup() -> None:
    # 2 warm-up steps (0.1 -> 1), then cosine over the remaining 4 steps down to min_factor 0.2:
    # 0.2 + 0.8 * 0.5 * (1 + cos(pi * k / 4)) for k = 0..3 -> 1, 0.88284, 0.6, 0.31716
    lrs = lrs_of(["scheduler=cosine", "scheduler.min_factor=0.2", "scheduler.warmup_steps=2"], 6)
    expected = [0.01, 0.055, 0.1, 0.0882843, 0.06, 0.0317157]
    assert lrs == pytest.approx(expected, abs=1e-7)


def test_degradation_preset_steps_at_32k_and_48k_of_64k() -> None:
    """The paper's schedule at full size, without training: 45,000 training images at batch 128
    are 352 steps per epoch (the last batch of 72 kept), x 182 epochs = 64,064 iterations;
    /10 at 32,032 and 48,048 (50% and 75%)."""
    cfg = compose(["experiment=degradation"])
    assert (cfg.data.val_size, cfg.data.batch_size, cfg.trainer.epochs) == (5000, 128, 182)
    assert cfg.optimizer.lr == 0.1
    total = 182 * 352
    lrs = lrs_of(["experiment=degradation"], total, base_lr=cfg.optimizer.lr)
    assert len(lrs) == 64_064
    changes = [step for step in range(1, total) if lrs[step] != lrs[step - 1]]
    assert changes == [32_032, 48_048]
    assert lrs[0] == pytest.approx(0.1) and lrs[32_031] == pytest.approx(0.1)
    assert lrs[32_032] == pytest.approx(0.01) and lrs[48_047] == pytest.approx(0.01)
    assert lrs[48_048] == pytest.approx(0.001) and lrs[-1] == pytest.approx(0.001)


@pytest.mark.slow
def test_metrics_lr_column_follows_the_schedule(tmp_path: Path, fmnist_root: Path) -> None:
    """A real tiny run: 256 training images at batch 128 = 2 steps per epoch, 4 epochs = 8 steps,
    warm-up over 2 steps from 0.1x. Each row's lr is the lr at the epoch's first step:
    step 0 -> 0.01, step 2 -> 0.1, step 4 -> 0.01 (50%), step 6 -> 0.001 (75%)."""
    result = run_cli(
        f"data.root={fmnist_root}",
        "data.train_subset=384",
        "data.val_size=128",
        "data.test_subset=128",
        "data.batch_size=128",
        "trainer.epochs=4",
        "scheduler=multistep",
        "scheduler.warmup_steps=2",
        "model.depth=8",
        "logger=none",
        "trainer.progress=false",
        "trainer.num_threads=1",  # more threads than free cores make a tiny run 3x slower
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (metrics,) = tmp_path.glob("outputs/*/*/metrics.jsonl")
    rows = [r for r in map(json.loads, metrics.read_text().splitlines()) if "epoch" in r]
    assert [(r["epoch"], r["step"]) for r in rows] == [(1, 2), (2, 4), (3, 6), (4, 8)]
    assert [r["lr"] for r in rows] == pytest.approx([0.01, 0.1, 0.01, 0.001], rel=1e-12)
