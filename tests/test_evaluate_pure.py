"""Evaluation is pure: it runs the network in eval mode (running BatchNorm statistics, not the
batch's), changes no parameter or buffer, gives the same numbers twice in a row, and hands the
network back in the mode it found it. Checked on the Trainer's own ``evaluate`` and, from the
outside, on a run's reported test numbers recomputed from its checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_best_and_resume import make_trainer
from tiny_run import fake_test_split, fresh_model, label_of, train_images, train_tiny

from resnet_exp.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on 1 thread


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_evaluating_twice_changes_nothing_and_restores_training_mode(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, epochs=1)
    trainer.fit()  # running statistics that differ from any one batch's
    model = trainer.model
    model.train()
    before = snapshot(model)
    first = trainer.evaluate("val")
    second = trainer.evaluate("val")
    assert first == second and set(first) == {"val/loss", "val/err"}
    after = model.state_dict()
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert not changed, f"evaluation moved {changed}"
    assert model.training and all(m.training for m in model.modules()), "training mode restored"

    # eval mode: the numbers are those of the network with its running statistics
    model.eval()
    x, y = next(iter(trainer.data.eval_batches("val")))
    with torch.no_grad():
        logits = model(x)
    model.train()
    loss = F.cross_entropy(logits, y).item()
    err = 100.0 * (logits.argmax(1) != y).float().mean().item()
    assert first["val/loss"] == pytest.approx(loss, rel=1e-5)
    assert first["val/err"] == pytest.approx(err)


def eval_numbers(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    with torch.no_grad():
        logits = model(x)
    return F.cross_entropy(logits, y).item(), 100.0 * (logits.argmax(1) != y).sum().item() / len(y)


@pytest.mark.parametrize("augment", [False, True])
def test_reported_test_numbers_are_the_eval_mode_network_of_the_checkpoint(
    tmp_path: Path, augment: bool
) -> None:
    """The last row's validation and test numbers, recomputed from last.pt's weights and running
    statistics on images built here (not by the data module), in eval mode and un-augmented. A run
    that evaluated in training mode reports batch statistics' numbers and moves the running
    averages; one that augmented or swapped the splits reports other images' numbers."""
    run = train_tiny(
        tmp_path, "trainer.epochs=1", "data.test_subset=24", f"data.augment={str(augment).lower()}"
    )
    (row,) = run.epoch_rows()
    model = fresh_model(run.cfg)
    model.load_state_dict(load_checkpoint(run.run_dir / "checkpoints" / "last.pt")["model"])
    model.eval()
    x, y = fake_test_split()
    x, y = x[:24], y[:24]  # data.test_subset: the first 24 test images
    loss, err = eval_numbers(model, x, y)
    assert row["test/loss"] == pytest.approx(loss, rel=1e-5)
    assert row["test/err"] == pytest.approx(err)
    if augment:  # crops move pixel (0, 0): the trained images' indices cannot be read back
        return
    # validation: the 16 of the first 64 training images that were never trained on
    trained = {int(i) for step in run.steps for i in torch.round(step.x[:, 0, 0, 0] * 255)}
    held_out = sorted(set(range(64)) - trained)
    assert len(held_out) == 16
    images = train_images()[held_out]
    loss, err = eval_numbers(model, images, label_of(torch.tensor(held_out)))
    assert row["val/loss"] == pytest.approx(loss, rel=1e-5)
    assert row["val/err"] == pytest.approx(err)
