"""`python -m resnet_exp.status`: each job's state, its numbers and the exit code scripts rely on.

Most sweeps here are written by hand the way the product writes them (multirun.yaml, .hydra/,
summary.json, metrics.jsonl), so every state can be set up exactly; one test reads a real sweep.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from cli import run_cli

from resnet_exp import status

COMMON = ["data.train_subset=64", "trainer.epochs=2"]


def write_sweep(sweep: Path, depths: str = "8,14,20") -> None:
    """The multirun.yaml Hydra writes: the sweep command's overrides."""
    sweep.mkdir(parents=True, exist_ok=True)
    task = [f"model/depth={depths}", *COMMON]
    multirun = {"hydra": {"overrides": {"task": task}, "sweeper": {"params": None}}, "seed": 0}
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(multirun))


def row(epoch: int, train_err: float, val_err: float, test_err: float) -> dict:
    return {"epoch": epoch, "train/loss": 1.0, "train/err": train_err, "val/err": val_err,
            "test/err": test_err}  # fmt: skip


def write_job(
    sweep: Path,
    name: str,
    depth: int,
    state: str,
    rows: list[dict],
    pid: int | None = None,
    error: str | None = None,
) -> Path:
    """A job folder as app.run leaves it: Hydra's record, metrics.jsonl and summary.json."""
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    overrides = [f"model/depth={depth}", *COMMON]
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {
        "status": state,
        "error": error,
        "dataset": "fashionmnist",
        "seed": 0,
        "job": ",".join(overrides),
        "overrides": overrides,
        "epochs_planned": 2,
        "host": socket.gethostname(),
        "pid": pid or os.getpid(),
        "model": {"block": "basic", "depth": depth, "residual": True, "params": 1, "flops": 1},
        "wall_time_s": 61.0,
    }
    if state != "running":
        best = min(rows, key=lambda r: r["val/err"]) if rows else None
        summary.update(epochs=len(rows), final=rows[-1] if rows else None, best=best)
    (job / "summary.json").write_text(json.dumps(summary))
    return job


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def show(folder: Path, capsys: pytest.CaptureFixture, *flags: str) -> tuple[int, str]:
    code = status.main([str(folder), *flags])
    return code, capsys.readouterr().out


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # one line per job, nothing folded


def test_finished_sweep_exits_zero_with_each_jobs_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    write_sweep(tmp_path, "8,14")
    write_job(tmp_path, "0", 8, "completed", [row(1, 50.0, 40.0, 41.0), row(2, 30.0, 35.0, 36.0)])
    write_job(tmp_path, "1", 14, "completed", [row(1, 45.0, 33.0, 34.5), row(2, 25.5, 37.0, 38.0)])
    code, out = show(tmp_path, capsys)
    assert code == 0
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if "│" in line}
    assert "completed" in lines["0"] and "model/depth=8" in lines["0"]
    assert "30.00" in lines["0"] and "35.00" in lines["0"] and "36.00" in lines["0"]
    # job 1: best validation was epoch 1, so test at best is 34.50; final training error 25.50
    assert "25.50" in lines["1"] and "33.00" in lines["1"] and "34.50" in lines["1"]
    assert "1 min" in lines["1"]
    assert "2 jobs: 2 completed" in out
    assert "pending" not in out


def test_failed_and_diverged_jobs_exit_non_zero_and_show_the_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    write_sweep(tmp_path)
    write_job(tmp_path, "0", 8, "completed", [row(1, 50.0, 40.0, 41.0), row(2, 30.0, 35.0, 36.0)])
    write_job(tmp_path, "1", 14, "failed", [row(1, 50.0, 40.0, 41.0)],
              error="RuntimeError: CUDA out of memory")  # fmt: skip
    write_job(tmp_path, "2", 20, "diverged", [row(1, 90.0, 90.0, 90.0)])
    code, out = show(tmp_path, capsys)
    assert code == status.EXIT_NOT_ALL_COMPLETED
    assert "failed: RuntimeError: CUDA out of memory" in out
    assert "diverged" in out
    assert "1 completed, 1 failed, 1 diverged" in out


def test_half_done_sweep_shows_running_lost_and_pending_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    write_sweep(tmp_path, "8,14,20,32")
    write_job(tmp_path, "0", 8, "completed", [row(1, 50.0, 40.0, 41.0), row(2, 30.0, 35.0, 36.0)])
    write_job(tmp_path, "1", 14, "running", [row(1, 50.0, 40.0, 41.0)])  # this process: alive
    write_job(tmp_path, "2", 20, "running", [row(1, 60.0, 50.0, 51.0)], pid=dead_pid())
    code, out = show(tmp_path, capsys)
    assert code == status.EXIT_NOT_ALL_COMPLETED
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if "│" in line}
    assert "running: epoch 1 of 2 done, last record" in lines["1"]
    assert "lost" in lines["2"] and "re-run the sweep command" in lines["2"]
    pending = lines["-"]  # asked for by the sweep command, no folder yet
    assert "pending" in pending and "model/depth=32" in pending


def test_a_stopped_job_says_why_and_that_the_same_command_resumes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    write_sweep(tmp_path, "8")
    job = write_job(tmp_path, "0", 8, "terminated", [row(1, 50.0, 40.0, 41.0)])
    summary = json.loads((job / "summary.json").read_text())
    summary["stopped_by"] = "SIGTERM at step 3"
    (job / "summary.json").write_text(json.dumps(summary))
    code, out = show(tmp_path, capsys)
    assert code == status.EXIT_NOT_ALL_COMPLETED
    assert "terminated: SIGTERM at step 3; the same command resumes it" in out


def test_watch_returns_zero_once_the_last_job_completes(tmp_path: Path) -> None:
    write_sweep(tmp_path, "8")
    write_job(tmp_path, "0", 8, "running", [row(1, 50.0, 40.0, 41.0)])
    watcher = subprocess.Popen(
        [sys.executable, "-m", "resnet_exp.status", str(tmp_path), "--watch", "--interval", "0.2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    assert watcher.poll() is None, "--watch ended while a job was still running"
    summary_path = tmp_path / "0" / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary.update(status="completed", epochs=2, final=row(2, 30.0, 35.0, 36.0))
    summary_path.write_text(json.dumps(summary))
    out, _ = watcher.communicate(timeout=60)
    assert watcher.returncode == 0
    assert "completed" in out


def test_a_folder_without_jobs_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code = status.main([str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert code == 2
    assert "does not exist" in err and "sweep folder" in err and "Traceback" not in err


@pytest.mark.slow
def test_status_of_a_real_single_run(tmp_path: Path, fmnist_root: Path) -> None:
    result = run_cli(
        f"data.root={fmnist_root}", "data.train_subset=64", "data.val_size=32",
        "data.test_subset=32", "data.batch_size=16", "model/depth=8", "trainer.epochs=1",
        "logger=none",
        "hydra.run.dir=run", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    shown = run_cli("run", cwd=tmp_path, module="resnet_exp.status", env={"COLUMNS": "250"})
    assert shown.returncode == 0, shown.stdout + shown.stderr
    final = json.loads((tmp_path / "run" / "summary.json").read_text())["final"]
    assert "completed" in shown.stdout and "1/1" in shown.stdout
    assert f"{final['train/err']:.2f}" in shown.stdout
