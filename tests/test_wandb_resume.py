"""A killed run resumed with the same command continues the same W&B run (SPEC §7), read back
from the offline run files: one run id across attempts, one history row per epoch."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from cli import fault_env, run_cli
from wandb_files import read_offline_runs


@pytest.mark.slow
def test_a_resumed_run_continues_its_wandb_run_with_one_row_per_step(
    tmp_path: Path, fmnist_root: Path
) -> None:
    run_dir = tmp_path / "run"
    args = [
        f"data.root={fmnist_root}", "data.train_subset=64", "data.val_size=32",
        "data.test_subset=32", "data.batch_size=16", "model/depth=8", "trainer.epochs=3",
        "logger.mode=offline",
        f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    # Killed while evaluating epoch 3: epochs 1-2 are checkpointed and already in W&B.
    killed = run_cli(*args, cwd=tmp_path, env=fault_env(kill_at="eval:3"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    first_id = json.loads((run_dir / "summary.json").read_text())["wandb_run_id"]

    resumed = run_cli(*args, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["attempts"] == 2 and summary["status"] == "completed"
    assert summary["wandb_run_id"] == first_id == summary["wandb"]["run_id"]

    attempts = read_offline_runs(run_dir, include_internal=True)
    # wandb-core writes an offline file only when the run closes (a SIGKILLed attempt's maybe
    # later, after the resume looked), so the killed attempt's unfinished folder is set aside and
    # the resumed attempt logs every step metrics.jsonl has that the W&B run lacks
    (unfinished,) = (run_dir / "wandb" / "unfinished").iterdir()
    assert unfinished.name.endswith(f"-{first_id}")
    assert [a["path"].parent.name.endswith(f"-{first_id}") for a in attempts] == [True]
    assert {a["run_id"] for a in attempts if a["history"]} == {first_id}
    logged = [row for a in attempts for row in a["history"]]
    metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    # one history row per optimizer step that metrics.jsonl has a row for, in order, none twice
    assert [row["_step"] for row in logged] == sorted({m["step"] for m in metrics})
    epochs = [row for row in logged if "train/err" in row]  # (wandb copies `epoch` into all)
    assert [row["epoch"] for row in epochs] == [1, 2, 3]
    epoch_rows = [m for m in metrics if "epoch" in m]
    assert [r["train/err"] for r in epochs] == pytest.approx([m["train/err"] for m in epoch_rows])
    assert attempts[-1]["summary"]["status"] == "completed"

    # trainer.resume=never starts the run over: a new W&B run, not more rows in the old one
    fresh = run_cli(*args, "trainer.resume=never", "trainer.epochs=1", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["wandb_run_id"] != first_id
