"""Divergence is caught where it happens, for that reason only: a batch that is NaN at a known step
(not a huge lr whose blow-up point moves with any change to training) must stop the run at the
first finite check after it, record the partial epoch as diverged, and leave only finite
checkpoints behind."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_best_and_resume import FakeData, SnapshotLogger

from resnet_exp.hydra_glue.compose import compose
from resnet_exp.tracking.record import RunRecord
from resnet_exp.training.checkpoint import load_checkpoint
from resnet_exp.training.loop import LoopSettings, Trainer
from resnet_exp.training.schedules import constant

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on 1 thread


class PoisonedData(FakeData):
    """FakeData with 6 steps per epoch whose step ``poisoned`` (0-based) is all NaN."""

    steps_per_epoch = 6

    def __init__(self, poisoned: int) -> None:
        super().__init__()
        x, y = self.batches[0]
        self.batches = [(x.clone(), y) for _ in range(self.steps_per_epoch)]
        self.batches[poisoned] = (torch.full_like(x, float("nan")), y)


@pytest.mark.parametrize(("poisoned", "stops_at"), [(2, 4), (4, 6), (0, 2)])
def test_a_nan_batch_stops_the_run_at_the_next_finite_check(
    tmp_path: Path, poisoned: int, stops_at: int
) -> None:
    from hydra.utils import instantiate

    torch.manual_seed(0)
    model = instantiate(compose(["model.depth=8"]).model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    settings = LoopSettings(
        epochs=2, progress=False, finite_check_steps=2, checkpoint_every_steps=2
    )
    trainer = Trainer(
        model, PoisonedData(poisoned), optimizer, constant(optimizer, total_steps=12),
        torch.device("cpu"), RunRecord(tmp_path), SnapshotLogger(model), settings,
        parts=model.parts(),
    )  # fmt: skip
    result = trainer.fit()
    assert result.status == "diverged"
    (row,) = result.rows
    assert (row["epoch"], row["step"]) == (1, stops_at)
    assert "val/err" not in row, "a diverged epoch is not evaluated"
    last = tmp_path / "checkpoints" / "last.pt"
    if stops_at == 2:  # diverged before the first checkpoint was due
        assert not last.exists()
        return
    state = load_checkpoint(last)
    assert state["step"] == stops_at - 2, "the last checkpoint is the one before the NaN"
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
