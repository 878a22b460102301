"""Training for real, through the command line: the run record, repeatability and learning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli import SPEC_EPOCH_KEYS, run_cli
from tiny_run import BASE, fake_fashionmnist

TIMING = {"time/epoch_s", "throughput/img_s"}


def only_run_dir(cwd: Path) -> Path:
    runs = [p.parent for p in (cwd / "outputs").glob("*/*/.hydra")]
    assert len(runs) == 1, runs
    return runs[0]


def read_metrics(run_dir: Path) -> list[dict]:
    """The epoch rows (per-step training rows carry no "epoch")."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "epoch" in r]


def tiny(root: Path, *extra: str) -> list[str]:
    return [
        f"data.root={root}",
        "data.train_subset=384",
        "data.val_size=128",
        "data.test_subset=256",
        "trainer.epochs=2",
        *extra,
    ]


@pytest.mark.slow
def test_resnet50_cli_run_writes_the_whole_run_record(tmp_path: Path, fmnist_root: Path) -> None:
    result = run_cli(
        "model=resnet50",
        "data=fashionmnist",
        f"data.root={fmnist_root}",
        "trainer.epochs=1",
        "data.train_subset=256",
        "data.val_size=64",
        "data.test_subset=256",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run_dir(tmp_path)
    for name in ("config.yaml", "overrides.yaml", "hydra.yaml"):
        assert (run_dir / ".hydra" / name).is_file()
    assert list(run_dir.glob("*.log")), "the job log"
    rows = read_metrics(run_dir)
    assert len(rows) == 1
    assert {*SPEC_EPOCH_KEYS, "grad_norm/stage4"} <= set(rows[0])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["model"]["block"] == "bottleneck" and summary["model"]["depth"] == 50
    # torchvision's 25,557,032 minus two stem input channels and 990 of the 1000 classes
    assert summary["model"]["params"] == 25_557_032 - 2 * 64 * 7 * 7 - 990 * (2048 + 1)
    assert summary["model"]["flops"] > 0
    assert summary["final"]["test/err"] == rows[-1]["test/err"]
    assert summary["best"]["val/err"] == rows[0]["val/err"]
    assert summary["wall_time_s"] > 0
    assert (run_dir / "checkpoints" / "last.pt").stat().st_size > 1e6
    assert (run_dir / "checkpoints" / "best.pt").is_file()
    assert list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert "wandb sync" in result.stdout + result.stderr
    assert "epoch 1/1 | train loss" in (run_dir / next(run_dir.glob("*.log")).name).read_text()


@pytest.mark.slow  # three CLI trainings on the real dataset
def test_same_seed_gives_identical_metrics_and_another_seed_does_not(
    tmp_path: Path, fmnist_root: Path
) -> None:
    histories = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        cwd = tmp_path / name
        cwd.mkdir()
        result = run_cli(
            *tiny(fmnist_root, f"seed={seed}", "data.augment=true"), "logger=none", cwd=cwd
        )
        assert result.returncode == 0, result.stderr[-3000:]
        rows = read_metrics(only_run_dir(cwd))
        histories.append([{k: v for k, v in r.items() if k not in TIMING} for r in rows])
    assert len(histories[0]) == 2
    assert histories[0] == histories[1]
    assert histories[0] != histories[2]


@pytest.mark.slow
def test_resnet20_learns_real_fashion_mnist(tmp_path: Path, fmnist_root: Path) -> None:
    """5,000 real images, 2 epochs, paper recipe: a bare reference loop reaches 74-75%.

    Accuracy alone cannot tell a wrong recipe at this size (measured, fp32, seed 0: 72.9% test
    accuracy; 73.2% with an lr that never decays; 70.2% for plain-20, and plain-20 matched
    ResNet-20's training error with seed 1), so the schedule is checked in the record too.
    A plain net or a shortcut that adds nothing is caught by tests/test_models.py (mutants
    residual_removed and shortcut_zero in tests/mutants.py).
    """
    result = run_cli(
        f"data.root={fmnist_root}",
        "data.train_subset=5000",
        "data.val_size=500",
        "trainer.epochs=2",
        "logger=none",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_metrics(only_run_dir(tmp_path))
    final = rows[-1]
    accuracy = 100 - final["test/err"]
    assert accuracy >= 65, final
    # 4,500 training images at batch 128: 36 steps per epoch, 72 in all; /10 at step 36, the
    # first step of epoch 2 (each row's lr is the lr at its epoch's first step)
    assert [r["step"] for r in rows] == [36, 72]
    assert [r["lr"] for r in rows] == pytest.approx([0.1, 0.01], rel=1e-12)
    assert rows[1]["train/loss"] < 0.75 * rows[0]["train/loss"], rows


@pytest.mark.slow  # a CLI run (tiny: 6 steps on fake images)
def test_a_run_ends_on_its_result_and_shows_progress_lines_when_piped(tmp_path: Path) -> None:
    """Its last lines: best val err (epoch), test err at best val, final train err, wall time and
    the record's folder; stdout is a pipe, so progress is a plain line every log_every_steps."""
    root = fake_fashionmnist(tmp_path / "data")
    overrides = [o for o in BASE if o != "trainer.progress=false"]
    result = run_cli(f"data.root={root}", *overrides, "trainer.log_every_steps=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = [line.split("] - ", 1)[-1] for line in result.stdout.splitlines()]
    summary = json.loads((only_run_dir(tmp_path) / "summary.json").read_text())
    best, final = summary["best"], summary["final"]
    assert out[-2] == (
        f"result (completed): best val err {best['val/err']:.2f}% (epoch {best['epoch']}) | "
        f"test err at best val {best['test/err']:.2f}% | final train err "
        f"{final['train/err']:.2f}% | wall time 00:{int(summary['wall_time_s']):02d}"  # < 1 min
    )
    assert out[-1] == f"record: {only_run_dir(tmp_path)}"
    steps = [line.split(" | ")[0] for line in out if line.startswith("step ")]
    assert steps == ["step 2/6 (epoch 1/2)", "step 4/6 (epoch 2/2)", "step 6/6 (epoch 2/2)"]
