"""What the Trainer keeps: ``best.pt`` is the epoch with the lowest validation error (not the last,
not the lowest training error), and a resumed run restores the optimizer and schedule so it ends
bit-identical to an uninterrupted one. Driven in process with a small fake data module."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from resnet_exp.hydra_glue.compose import compose
from resnet_exp.tracking.record import RunRecord
from resnet_exp.training.checkpoint import load_checkpoint
from resnet_exp.training.loop import LoopSettings, Trainer
from resnet_exp.training.schedules import multistep

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on 1 thread


class FakeData:
    """Three fixed batches of random 1x28x28 images; the same order every epoch."""

    steps_per_epoch = 3

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.batches = [
            (torch.randn(16, 1, 28, 28, generator=g), torch.randint(0, 10, (16,), generator=g))
            for _ in range(self.steps_per_epoch)
        ]

    def train_batches(self, epoch: int, start_step: int = 0):
        return iter(self.batches[start_step:])

    def eval_batches(self, split: str):
        return iter(self.batches[:1])


class SnapshotLogger:
    """Keeps a copy of the weights each time an epoch row is logged (after its checkpoints)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def log(self, metrics: dict, step: int) -> None:
        if "epoch" in metrics:  # not a per-step training row
            weights = {k: v.clone() for k, v in self.model.state_dict().items()}
            self.weights[metrics["epoch"]] = weights


def make_trainer(run_dir: Path, epochs: int, seed: int = 0) -> Trainer:
    torch.manual_seed(seed)
    model = instantiate(compose(["model.depth=8"]).model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    # milestones at 3 of 6 and 4.5 -> 4 of 6 steps: the lr changes inside the resumed epoch
    scheduler = multistep(optimizer, total_steps=2 * FakeData.steps_per_epoch)
    settings = LoopSettings(epochs=epochs, progress=False)
    return Trainer(
        model, FakeData(), optimizer, scheduler, torch.device("cpu"), RunRecord(run_dir),
        SnapshotLogger(model), settings, parts=model.parts(),
    )  # fmt: skip


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("third", [25.0, 20.0], ids=["worse", "tie"])
def test_best_pt_is_the_epoch_with_the_lowest_validation_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, third: float
) -> None:
    """A later epoch that only ties the best validation error does not replace it (on a
    500-image split ties are common, and best.pt and test_err_at_best_val would move)."""
    trainer = make_trainer(tmp_path, epochs=3)
    # Scripted errors: validation is best at epoch 2; training error keeps falling (best at 3).
    val_err = iter([30.0, 20.0, third])
    test_err = iter([31.0, 22.0, 27.0])
    train_err = iter([60.0, 40.0, 10.0])
    real_evaluate, realtrain_one_epoch = trainer.evaluate, trainer.train_one_epoch

    def evaluate(split: str) -> dict[str, float]:
        scripted = {"val": val_err, "test": test_err}[split]
        return {**real_evaluate(split), f"{split}/err": next(scripted)}

    def train_epoch(epoch: int) -> dict[str, float]:
        return {**realtrain_one_epoch(epoch), "train/err": next(train_err)}

    monkeypatch.setattr(trainer, "evaluate", evaluate)
    monkeypatch.setattr(trainer, "train_one_epoch", train_epoch)

    result = trainer.fit()
    assert result.status == "completed" and [r["epoch"] for r in result.rows] == [1, 2, 3]
    assert result.best["epoch"] == 2
    assert (result.best["val/err"], result.best["test/err"]) == (20.0, 22.0)
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert (best["epoch"], last["epoch"]) == (2, 3)
    snapshots = trainer.logger.weights
    assert same_weights(best["model"], snapshots[2])
    assert not same_weights(best["model"], snapshots[3])
    assert same_weights(last["model"], snapshots[3])


def test_resume_restores_optimizer_and_schedule_bit_for_bit(tmp_path: Path) -> None:
    whole = make_trainer(tmp_path / "whole", epochs=2)
    whole_result = whole.fit()

    first = make_trainer(tmp_path / "split", epochs=1)
    first.fit()
    checkpoint = tmp_path / "split" / "checkpoints" / "last.pt"
    state = load_checkpoint(checkpoint)
    assert state["optimizer"]["state"], "SGD momentum buffers are in the checkpoint"

    # a fresh process: other initial weights, empty optimizer state, schedule at step 0
    second = make_trainer(tmp_path / "split", epochs=2, seed=1)
    rows = second.resume(checkpoint)
    second_result = second.fit(rows)

    assert second.step == whole.step == 6
    assert second.optimizer.param_groups[0]["lr"] == pytest.approx(0.001)
    assert same_weights(second.model.state_dict(), whole.model.state_dict())
    strip = ("time/epoch_s", "throughput/img_s")
    assert [{k: v for k, v in r.items() if k not in strip} for r in second_result.rows] == [
        {k: v for k, v in r.items() if k not in strip} for r in whole_result.rows
    ]


# -- disk and file limits (issue 31, class 6) --


@pytest.mark.parametrize(
    "number", [errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.ENAMETOOLONG, errno.EMFILE]
)
def test_a_best_pt_the_os_refused_is_one_paragraph_and_the_retry_repairs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, number: int
) -> None:
    """last.pt records epoch 1 as the best, then the OS refuses best.pt: one paragraph naming the
    limit. The same command, once the limit is lifted, has nothing left to train: it rewrites
    best.pt from last.pt, so summary.json, best.pt and last.pt agree."""
    from tiny_run import train_tiny

    from resnet_exp.errors import OS_LIMITS, UserError
    from resnet_exp.training import checkpoint

    real = checkpoint.atomic_write

    def refuse_best(path: Path, *args: object, **kwargs: object) -> Path:
        if Path(path).name == "best.pt":
            raise OSError(number, os.strerror(number), str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "atomic_write", refuse_best)
    with pytest.raises(UserError) as refused:
        train_tiny(tmp_path, "trainer.epochs=1")
    message = str(refused.value)
    assert OS_LIMITS[number] in message and errno.errorcode[number] in message
    assert "\n" not in message and "run the same command again" in message
    monkeypatch.setattr(checkpoint, "atomic_write", real)
    run = train_tiny(tmp_path, "trainer.epochs=1")
    folder = run.run_dir / "checkpoints"
    assert run.summary.status == "completed" and run.summary.best["epoch"] == 1
    assert load_checkpoint(folder / "best.pt")["epoch"] == 1
    assert load_checkpoint(folder / "last.pt")["best"]["epoch"] == 1
