"""`python -m resnet_exp.status`: each job's state, its numbers and the exit code scripts rely on.

Most sweeps here are written by hand the way the product writes them (multirun.yaml, .hydra/,
summary.json, metrics.jsonl), so every state can be set up exactly; one test reads a real sweep.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from cli import run_cli

from resnet_exp import status
from resnet_exp.report.build import build_report
from resnet_exp.tracking.folder_lock import FolderLock

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


def table_rows(out: str) -> dict[str, str]:
    """Each table line by its job (the lines between the header's rule and the caption)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("──")) + 1
    end = next(i for i, line in enumerate(lines) if line.startswith("errors in %"))
    return {line.split()[0]: line for line in lines[start:end]}


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
    lines = table_rows(out)
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
    lines = table_rows(out)
    assert "running" in lines["1"] and "1 running: epoch 1 of 2 done, last record" in out
    assert "lost" in lines["2"] and "re-run the sweep command" in out
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


def test_every_line_fits_80_columns_piped_and_no_word_is_broken(tmp_path: Path) -> None:
    """Issue 29 item 6: at COLUMNS=80 through a pipe, one line per job; a long configuration ends
    in an ellipsis; no word is split across lines (was `complet`/`ed`, `model/bl`/`ock=basi`)."""
    write_sweep(tmp_path, "8,14")
    long = [f"model/block=basic optimizer.lr=0.0{i}" for i in range(6)]
    write_job(tmp_path, "0", 8, "completed", [row(1, 50.0, 40.0, 41.0), row(2, 30.0, 35.0, 36.0)])
    job = write_job(tmp_path, "1", 14, "failed", [row(1, 50.0, 40.0, 41.0)],
                    error="RuntimeError: CUDA out of memory " + "x " * 60)  # fmt: skip
    summary = json.loads((job / "summary.json").read_text())
    summary["overrides"] = ["model/depth=14", *long, *COMMON]
    (job / "summary.json").write_text(json.dumps(summary))
    shown = run_cli(str(tmp_path), cwd=tmp_path, module="resnet_exp.status", env={"COLUMNS": "80"})
    lines = shown.stdout.splitlines()
    assert shown.returncode == 1 and max(map(len, lines)) <= 80, shown.stdout
    rows = table_rows(shown.stdout)
    assert rows["0"].split()[1:3] == ["completed", "2/2"] and rows["1"].rstrip().endswith("…")
    words = set(" ".join([*long, *COMMON, "completed", "failed", "RuntimeError:"]).split())
    pieces = {w for line in lines for w in line.split() if not w.endswith("…")} - words
    pieces -= {"train", "val", "test"}  # headers
    assert not {p for p in pieces if any(w.startswith(p) for w in words)}  # a word's first part


def test_damaged_records_are_one_named_problem_and_invent_no_job(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Issue 31 class 12: odd types, an empty file, bytes that are not UTF-8."""
    write_job(tmp_path, "0", 8, "completed", [row(1, 50.0, 40.0, 41.0)])
    for damage, problem in (
        (b"hydra:\n  overrides:\n    task: 5\n", "is empty or not the hydra.overrides.task"),
        (b"", "is empty or not"),
        (b"\xff\xfe hydra", "cannot be read (UnicodeDecodeError"),
        (b"- 1\n- 2\n", "is empty or not"),
    ):
        (tmp_path / "multirun.yaml").write_bytes(damage)
        code, out = show(tmp_path, capsys)
        flat = " ".join(out.split())
        assert code == 0 and "1 jobs: 1 completed" in flat, out  # no job invented
        assert f"multirun.yaml {problem}" in flat and "only the jobs with a folder" in flat
    broken = write_job(tmp_path, "1", 14, "completed", [row(1, 50.0, 40.0, 41.0)])
    (broken / "summary.json").write_bytes(b"\xff\xfe{")  # a job's own records damaged too
    (broken / ".hydra" / "overrides.yaml").write_bytes(b"\xff")
    code, out = show(tmp_path, capsys)
    assert code == 1 and "2 jobs: 1 completed, 1 unknown" in out
    assert "summary.json cannot be parsed" in " ".join(out.split())
    assert build_report(tmp_path).runs  # the report reads the same damage as a named problem
    shutil.rmtree(tmp_path / "0")
    shutil.rmtree(broken)
    assert status.main([str(tmp_path)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "holds no sweep or run (its multirun.yaml is empty or not" in err


def test_a_job_whose_process_died_before_recording_is_lost_not_pending(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    write_sweep(tmp_path, "8")
    (tmp_path / "0" / ".hydra").mkdir(parents=True)  # Hydra made it; the job died at once
    overrides = yaml.safe_dump(["model/depth=8", *COMMON])
    (tmp_path / "0" / ".hydra" / "overrides.yaml").write_text(overrides)
    code, out = show(tmp_path, capsys)
    assert "1 jobs: 1 lost" in out and "ended before it recorded anything" in " ".join(out.split())
    lock = FolderLock(tmp_path, "the sweep folder").acquire()  # its sweep still runs: pending
    try:
        assert "1 jobs: 1 pending" in show(tmp_path, capsys)[1]
    finally:
        lock.release()


@pytest.mark.slow
def test_a_job_finished_before_a_new_axis_was_added_is_completed_not_pending(
    tmp_path: Path, fmnist_root: Path
) -> None:
    """Planned jobs are matched to folders by identity, not by the text of their overrides."""
    tiny = [f"data.root={fmnist_root}", "data.train_subset=64", "data.val_size=32",
            "data.test_subset=32", "data.batch_size=16", "trainer.epochs=1", "logger=none",
            "trainer.response_images=0", "hydra.sweep.dir=sweep"]  # fmt: skip
    first = run_cli("--multirun", "model/depth=8", *tiny, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    (tmp_path / "sweep" / "multirun.yaml").write_text(  # as a re-run adding an axis leaves it
        (tmp_path / "sweep" / "multirun.yaml")
        .read_text()
        .replace("- model/depth=8", "- model/depth=8,14\n    - model/block=basic")
    )
    shown = run_cli("sweep", cwd=tmp_path, module="resnet_exp.status", env={"COLUMNS": "80"})
    flat = " ".join(shown.stdout.split())
    assert "2 jobs: 1 completed, 1 pending" in flat, shown.stdout + shown.stderr


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
