"""The numbers a run reports, recomputed from first principles on small fixed inputs.

A tiny run (compose -> app.train, tests/tiny_run.py) records each optimizer step's weights and
batch. Here every step is redone on a fresh copy of the network: labels read off the images'
pixels (the fake images spell their index), cross-entropy and error counted by hand, gradients by
autograd and their norms per part by ``torch.linalg.vector_norm``. The epoch rows, the per-step
rows and the gradient-norm columns must equal these sums; the input batches must be the fake
images normalised with the configured mean and std.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tiny_run import N_TRAIN, fresh_model, labels_from_pixels, train_images, train_tiny

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on 1 thread

# momentum and a schedule that changes inside epoch 2, so a resume that loses either shows
SCHEDULE_OVERRIDES = ["scheduler.milestones=[0.7,0.9]", "trainer.log_every_steps=2"]


def redo(run) -> list[dict]:
    """Per step: images, loss sum, wrong count and per-part gradient norms, recomputed."""
    model = fresh_model(run.cfg)
    parts = model.parts()
    out = []
    for step in run.steps:
        model.load_state_dict(step.state)
        model.train()
        model.zero_grad(set_to_none=True)
        y = labels_from_pixels(step.x)
        logits = model(step.x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        norms = {}
        for name, part in parts.items():
            grads = [p.grad.flatten() for p in part.parameters() if p.grad is not None]
            norms[name] = torch.linalg.vector_norm(torch.cat(grads)).item()
        out.append(
            {
                "n": len(y),
                "loss_sum": loss.item() * len(y),
                "wrong": (logits.argmax(1) != y).sum().item(),
                "norms": norms,
            }
        )
    return out


def test_epoch_and_step_rows_and_grad_norms_equal_a_recomputation(tmp_path: Path) -> None:
    run = train_tiny(tmp_path, "trainer.log_every_steps=2")
    steps = redo(run)
    assert len(steps) == 6 and all(s["n"] == 16 for s in steps)
    rows = run.epoch_rows()
    assert [r["step"] for r in rows] == [3, 6]
    for row, epoch in zip(rows, (steps[:3], steps[3:])):
        n = sum(s["n"] for s in epoch)
        assert row["train/loss"] == pytest.approx(sum(s["loss_sum"] for s in epoch) / n, rel=1e-5)
        assert row["train/err"] == pytest.approx(100.0 * sum(s["wrong"] for s in epoch) / n)
        for name in epoch[0]["norms"]:
            mean = sum(s["norms"][name] for s in epoch) / len(epoch)
            assert row[f"grad_norm/{name}"] == pytest.approx(mean, rel=1e-5), name
    assert {k for k in rows[0] if k.startswith("grad_norm/")} == {
        "grad_norm/stem", "grad_norm/stage1", "grad_norm/stage2", "grad_norm/stage3",
        "grad_norm/head",
    }  # fmt: skip

    # windows of 2 steps, closed early at each epoch's end (3 steps per epoch)
    windows = {2: steps[0:2], 3: steps[2:3], 4: steps[3:4], 6: steps[4:6]}
    step_rows = run.step_rows()
    assert [r["step"] for r in step_rows] == list(windows)
    for row in step_rows:
        window = windows[row["step"]]
        n = sum(s["n"] for s in window)
        assert row["train_step/images"] == n
        loss = sum(s["loss_sum"] for s in window) / n
        assert row["train_step/loss"] == pytest.approx(loss, rel=1e-5)
        assert row["train_step/err"] == pytest.approx(100.0 * sum(s["wrong"] for s in window) / n)


def test_training_batches_are_the_images_normalised_with_the_configured_mean_and_std(
    tmp_path: Path,
) -> None:
    """data.mean, data.std, data.batch_size, data.train_subset and data.val_size, observed in the
    batches the network is trained on (no augmentation: the images are exact)."""
    mean, std = 0.5, 0.25
    run = train_tiny(tmp_path, f"data.mean=[{mean}]", f"data.std=[{std}]", "data.batch_size=12")
    expected = train_images(mean, std)  # normalised by hand, not by the data module
    per_epoch: list[list[int]] = [[], []]
    assert len(run.steps) == 8  # 48 images at batch 12: 4 steps per epoch
    for t, step in enumerate(run.steps):
        assert step.x.shape == (12, 1, 28, 28)
        index = torch.round((step.x[:, 0, 0, 0] * std + mean) * 255).long()
        assert index.min() >= 0 and index.max() < N_TRAIN, f"step {t}: not the normalised images"
        assert torch.allclose(step.x, expected[index], atol=1e-6), t
        per_epoch[t // 4] += index.tolist()
    for seen in per_epoch:  # 48 distinct images of the first 64: 16 held out for validation
        assert len(set(seen)) == 48 and max(seen) < 64
    assert set(per_epoch[0]) == set(per_epoch[1]) and per_epoch[0] != per_epoch[1]


def test_spread_interval_is_scipys_t_interval() -> None:
    """The report's interval of a mean: mean ± t(0.975, n-1) · s / √n, with scipy's t quantile."""
    import math

    from scipy import stats as sps

    from resnet_exp.report.stats import spread

    values = [7.25, 8.5, 6.75, 9.0, 7.5]
    n = len(values)
    mean = sum(values) / n
    s = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = sps.t.ppf(0.975, n - 1) * s / math.sqrt(n)
    got = spread(values)
    assert (got.n, got.mean, got.std) == (n, pytest.approx(mean), pytest.approx(s))
    assert (got.ci_low, got.ci_high) == (pytest.approx(mean - half), pytest.approx(mean + half))


def test_the_seed_decides_the_run(tmp_path: Path) -> None:
    """seed: the same seed gives the same rows and weights, another seed other ones."""
    timing = ("time/epoch_s", "throughput/img_s")

    def run(name: str, seed: int):
        done = train_tiny(tmp_path / name, f"seed={seed}", "trainer.epochs=1")
        rows = [{k: v for k, v in r.items() if k not in timing} for r in done.rows()]
        return rows, done.steps[0].before[0]

    (a, wa), (b, wb), (c, wc) = run("a", 3), run("b", 3), run("c", 4)
    assert a == b and torch.equal(wa, wb)
    assert a != c and not torch.equal(wa, wc)


def test_layer_responses_are_the_std_of_each_batchnorm_output_on_the_first_images(
    tmp_path: Path,
) -> None:
    """trainer.response_images: Fig. 7's responses of the trained net, on the first N images
    (test images when there is no validation split), recomputed with hooks on its BatchNorms
    (in a basic block every 3x3 conv is followed by one) and torch.std over all elements."""
    import csv

    from tiny_run import fake_test_split

    from resnet_exp.training.checkpoint import load_checkpoint

    run = train_tiny(tmp_path, "trainer.epochs=1", "data.val_size=0", "trainer.response_images=10")
    with (run.run_dir / "layer_responses.csv").open() as handle:
        written = [float(r["std"]) for r in csv.DictReader(handle)]
    model = fresh_model(run.cfg)
    model.load_state_dict(load_checkpoint(run.run_dir / "checkpoints" / "last.pt")["model"])
    model.eval()
    outputs: list[torch.Tensor] = []
    handles = [
        m.register_forward_hook(lambda _m, _a, out: outputs.append(out.double()))
        for m in model.modules()
        if isinstance(m, torch.nn.BatchNorm2d)
    ]
    with torch.no_grad():
        model(fake_test_split()[0][:10])
    for handle in handles:
        handle.remove()
    expected = [out.std(unbiased=False).item() for out in outputs]
    assert len(expected) == 7  # stem + 3 blocks x 2 convs of a depth-8 net
    assert written == pytest.approx(expected, rel=1e-5)

    off = train_tiny(tmp_path / "off", "trainer.epochs=1", "trainer.response_images=0")
    assert not (off.run_dir / "layer_responses.csv").exists()


def test_a_run_stopped_mid_epoch_resumes_bit_identical(tmp_path: Path) -> None:
    """Resume position: stopped one step into epoch 2 (step 4 of 6, a mid-epoch checkpoint), the
    same command continues at step 5 with the same weights, batches and lr as a run never
    stopped, and writes the same rows (the epoch's partial sums came back with the checkpoint)."""
    timing = ("time/epoch_s", "throughput/img_s")
    whole = train_tiny(tmp_path / "whole", *SCHEDULE_OVERRIDES)
    first = train_tiny(tmp_path / "split", *SCHEDULE_OVERRIDES, stop_after=4)
    assert first.summary is None and len(first.steps) == 4
    second = train_tiny(tmp_path / "split", *SCHEDULE_OVERRIDES)
    assert len(second.steps) == 2
    for mine, theirs in zip(second.steps, whole.steps[4:]):
        assert torch.equal(mine.x, theirs.x)
        assert mine.lrs == theirs.lrs
        assert all(torch.equal(a, b) for a, b in zip(mine.before, theirs.before))
        assert all(torch.equal(a, b) for a, b in zip(mine.after, theirs.after))

    def strip(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k not in timing} for r in rows]

    assert strip(second.rows()) == strip(whole.rows())
    assert [r["step"] for r in second.epoch_rows()] == [3, 6]
