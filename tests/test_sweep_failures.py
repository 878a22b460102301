"""A failing sweep job: one line when it fails, a table at the end, exit 1; fail-fast and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli import fault_env, run_cli

from resnet_exp.hydra_glue.sweep_failures import (
    FailedJob,
    SweepOutcome,
    distinguishing,
    summary_text,
)

TINY = [
    "data.train_subset=320",
    "data.val_size=64",
    "data.test_subset=128",
    "trainer.epochs=1",
    "model.depth=8",
    "logger=none",
]


def test_the_table_names_each_failed_job_by_what_sets_it_apart() -> None:
    jobs = [["seed=0", "model.depth=8"], ["seed=1", "model.depth=8"]]
    assert distinguishing(jobs[1], jobs) == "seed=1"
    assert distinguishing(["model.depth=8"], [["model.depth=8"]]) == "model.depth=8"
    outcome = SweepOutcome("outputs/multirun/x", jobs=3, fail_fast=True)
    outcome.failed.append(
        FailedJob("seed=1", "RuntimeError: boom", "outputs/multirun/x/a/resnet_exp.log")
    )
    outcome.not_started.append("seed=2")
    text = summary_text(outcome, explicit_sweep_dir=False)
    lines = text.splitlines()
    assert lines[0] == "sweep outputs/multirun/x: 1 of 3 jobs failed:"
    assert lines[1].split() == ["job", "error", "log"]
    assert lines[2].split() == [
        "seed=1",
        "RuntimeError:",
        "boom",
        "outputs/multirun/x/a/resnet_exp.log",
    ]
    # a sweep folder the user did not name must be named to resume it
    assert "hydra.sweep.dir=outputs/multirun/x" in lines[3]
    assert "hydra.sweep.dir" not in summary_text(outcome, explicit_sweep_dir=True).splitlines()[3]


def _states(sweep: Path) -> dict[str, str]:
    states = {}
    for job in sweep.glob("*/.hydra"):
        summary = job.parent / "summary.json"
        overrides = (job / "overrides.yaml").read_text()
        seed = next(line.split("=")[1] for line in overrides.splitlines() if "seed=" in line)
        states[seed] = json.loads(summary.read_text())["status"] if summary.exists() else "none"
    return states


@pytest.mark.slow
def test_fail_fast_stops_the_sweep_and_the_same_command_runs_the_rest(
    tmp_path: Path, fmnist_root: Path
) -> None:
    args = ["--multirun", "seed=0,1,2", f"data.root={fmnist_root}", *TINY,
            "hydra.sweep.dir=outputs/multirun/ff"]  # fmt: skip
    first = run_cli(*args, "hydra.sweeper.fail_fast=true", cwd=tmp_path,
                    env=fault_env(fail_job="seed=1"))  # fmt: skip
    assert first.returncode == 1, first.stderr
    assert "Traceback" not in first.stderr + first.stdout
    failed_lines = [line for line in first.stderr.splitlines() if line.startswith("job failed:")]
    assert len(failed_lines) == 1 and "RuntimeError: injected failure" in failed_lines[0]
    assert "resnet_exp.log" in failed_lines[0]
    assert "1 of 3 jobs failed:" in first.stderr
    assert "1 job not started" in first.stderr
    sweep = tmp_path / "outputs/multirun/ff"
    assert _states(sweep) == {"0": "completed", "1": "failed", "2": "none"}
    status = run_cli(str(sweep), module="resnet_exp.status", cwd=tmp_path)
    assert "1 completed, 1 failed, 1 pending" in status.stdout

    again = run_cli(*args, cwd=tmp_path)  # no fail_fast, no fault: the rest runs
    assert again.returncode == 0, again.stderr
    assert _states(sweep) == {"0": "completed", "1": "completed", "2": "completed"}


@pytest.mark.slow
def test_a_failing_joblib_job_is_one_line_and_the_sweep_ends_with_its_table(
    tmp_path: Path, fmnist_root: Path
) -> None:
    result = run_cli("--multirun", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                     "seed=0,1,2", f"data.root={fmnist_root}", *TINY,
                     "hydra.sweep.dir=outputs/multirun/jl", cwd=tmp_path,
                     env=fault_env(fail_job="seed=0"))  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert sum(line.startswith("job failed: seed=0") for line in result.stderr.splitlines()) == 1
    table = result.stderr.split("1 of 3 jobs failed:")[1].splitlines()
    assert table[2].split()[0] == "seed=0"
    assert _states(tmp_path / "outputs/multirun/jl") == {
        "0": "failed", "1": "completed", "2": "completed"
    }  # fmt: skip


@pytest.mark.slow
def test_a_joblib_job_killed_by_sigkill_is_a_failed_job_and_the_others_finish(
    tmp_path: Path, fmnist_root: Path
) -> None:
    """Issue 31, class 5: the job's process SIGKILLed as the OOM killer would (it kills itself as
    it starts training: tests/faults); joblib's pool must not break and lose the other jobs."""
    result = run_cli("--multirun", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                     "seed=0,1,2", f"data.root={fmnist_root}", *TINY,
                     "hydra.sweep.dir=outputs/multirun/jl", cwd=tmp_path,
                     env=fault_env(kill_job="seed=1"))  # fmt: skip
    sweep = tmp_path / "outputs/multirun/jl"
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    killed = "JobKilled: killed by signal 9, likely out of memory"
    lines = [x for x in result.stderr.splitlines() if x.startswith("job failed: seed=1")]
    assert len(lines) == 1 and killed in lines[0], result.stderr[-3000:]
    assert "1 of 3 jobs failed:" in result.stderr
    assert _states(sweep) == {"0": "completed", "1": "failed", "2": "completed"}
    assert (sweep / "report.md").is_file()
