"""What a training run sends to W&B, read back from the offline run files it leaves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli import SPEC_EPOCH_KEYS, run_cli

from resnet_exp.tracking.record import sweep_id
from resnet_exp.tracking.wandb_reader import read_offline_run


def tiny(root: Path) -> list[str]:
    return [
        f"data.root={root}",
        "data.train_subset=256",
        "data.val_size=64",
        "data.test_subset=128",
        "logger.mode=offline",
    ]


@pytest.mark.slow
def test_offline_run_holds_config_history_summary_group_and_tags(
    tmp_path: Path, fmnist_root: Path
) -> None:
    result = run_cli(*tiny(fmnist_root), "trainer.epochs=2", "model/block=plain", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = next((tmp_path / "outputs").glob("*/*/summary.json")).parent
    summary = json.loads((run_dir / "summary.json").read_text())
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in records if "epoch" in r]  # epoch rows; per-step rows have no epoch
    run = read_offline_run(run_dir, include_internal=True)
    epochs = [h for h in run["history"] if "train/err" in h]
    steps = [h for h in run["history"] if "train_step/err" in h]

    assert run["project"] == "resnet-exp"
    assert run["config"]["model"]["depth"] == 20  # resolved, nested, plain values
    assert run["config"]["model"]["in_channels"] == 1  # the ${data.in_channels} interpolation
    assert run["config"]["optimizer"]["lr"] == 0.1
    assert len(epochs) == 2
    assert [h["_step"] for h in steps] == [r["step"] for r in records if "epoch" not in r]
    for logged, row in zip(epochs, rows):
        assert set(logged) >= SPEC_EPOCH_KEYS
        assert logged["train/err"] == pytest.approx(row["train/err"])
        assert logged["test/err"] == pytest.approx(row["test/err"])
    assert run["summary"]["status"] == "completed"
    assert run["summary"]["best/val/err"] == pytest.approx(summary["best"]["val/err"])
    assert run["summary"]["final/test/err"] == pytest.approx(rows[-1]["test/err"])
    assert set(run["tags"]) >= {"plain", "depth-20", "fashionmnist"}
    assert run["group"] == sweep_id(run_dir)  # a single run is its own group
    assert run["name"] == summary["job"]
    assert run["exit_code"] == 0
    assert f"wandb sync {run_dir}" in result.stdout + result.stderr


@pytest.mark.slow
def test_multirun_jobs_are_separate_runs_in_one_group(tmp_path: Path, fmnist_root: Path) -> None:
    result = run_cli(
        "--multirun",
        "model/block=plain,basic",
        *tiny(fmnist_root),
        "trainer.epochs=1",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    job_dirs = sorted(
        p.parent for p in (tmp_path / "outputs" / "multirun").glob("*/*/*/summary.json")
    )
    assert len(job_dirs) == 2
    runs = [read_offline_run(d) for d in job_dirs]
    assert runs[0]["run_id"] != runs[1]["run_id"]
    assert runs[0]["group"] == runs[1]["group"]
    # no job logged into another's run: one epoch row each
    assert [sum("train/err" in h for h in r["history"]) for r in runs] == [1, 1]
    assert {r["config"]["model"]["block"]["path"].rsplit(".", 1)[1] for r in runs} == {
        "PlainBlock",
        "BasicBlock",
    }


@pytest.mark.slow
def test_a_sweep_jobs_wandb_run_is_named_by_what_sets_it_apart(
    tmp_path: Path, fmnist_root: Path
) -> None:
    """No local path (data.root) and none of the overrides every job shares in the run's name."""
    result = run_cli(
        "--multirun", "seed=1,2", "model/block=plain", *tiny(fmnist_root), "trainer.epochs=1",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    job_dirs = sorted(
        p.parent for p in (tmp_path / "outputs" / "multirun").glob("*/*/*/summary.json")
    )
    names = sorted(read_offline_run(d)["name"] for d in job_dirs)
    assert names == ["seed=1", "seed=2"]
    for job_dir in job_dirs:  # the folder still holds every override that changes the job
        assert job_dir.name.startswith("data.test_subset=128,data.train_subset=256,")
        summary = json.loads((job_dir / "summary.json").read_text())
        assert summary["job"] in names and f"data.root={fmnist_root}" in summary["overrides"]
