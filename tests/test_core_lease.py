"""Runs side by side share the cores: leases, fair shares, and a killed run leaves nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cli import run_cli

from resnet_exp.training import core_lease
from resnet_exp.training.core_lease import CoreLease, fair_share, live_leases


def test_the_cores_are_split_evenly_and_the_oldest_runs_get_the_remainder() -> None:
    assert [fair_share(2, 1, 0)] == [2]
    assert [fair_share(2, 2, i) for i in range(2)] == [1, 1]
    assert [fair_share(2, 3, i) for i in range(3)] == [1, 1, 1]  # never zero threads
    assert [fair_share(16, 3, i) for i in range(3)] == [6, 5, 5]


def test_runs_give_threads_up_when_another_starts_and_take_them_back_when_it_ends(
    tmp_path: Path,
) -> None:
    first = CoreLease(tmp_path, cores=8)
    assert (first.runs, first.threads) == (1, 8)
    second = CoreLease(tmp_path, cores=8)
    assert (second.runs, second.threads) == (2, 4)
    assert first.refresh(now=0.0) is None  # looks at most every REFRESH_S seconds
    assert first.refresh(now=1e9) == 4
    second.release()
    assert first.refresh(now=2e9) == 8
    assert first.refresh(now=3e9) is None  # unchanged: nothing to do
    capped = CoreLease(tmp_path, cores=8, cap=2)  # joblib's n_jobs=4 caps a job at 2
    assert capped.threads == 2
    capped.release()
    first.release()
    assert list(tmp_path.iterdir()) == []


def test_a_killed_run_leaves_no_lease_that_counts(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from resnet_exp.training.core_lease import "
         "CoreLease; CoreLease(Path(sys.argv[1]), cores=2); print('held', flush=True); "
         "time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    mine = CoreLease(tmp_path, cores=2)
    assert (mine.runs, mine.threads) == (2, 1)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert live_leases(tmp_path, own=mine.path) == [mine.path]
    assert [p.name for p in tmp_path.iterdir()] == [mine.path.name]  # its file is gone too
    assert mine.refresh(now=1e9) == 2
    mine.release()


def test_one_lease_per_process_a_sweeps_next_job_replaces_it(tmp_path: Path) -> None:
    seen: list[int] = []
    first = core_lease.take(4, None, seen.append, directory=tmp_path)
    second = core_lease.take(4, None, seen.append, directory=tmp_path)
    assert seen == [4, 4] and not first.path.exists()
    second.release()


@pytest.mark.slow
def test_a_run_with_num_threads_null_takes_its_share_and_says_why(
    tmp_path: Path, fmnist_root: Path
) -> None:
    runtime = tmp_path / "runtime"
    other = CoreLease(runtime / f"resnet_exp-cores-{os.getuid()}", cores=1)  # another run
    cores = len(os.sched_getaffinity(0))
    result = run_cli(
        f"data.root={fmnist_root}", "data.train_subset=256", "data.val_size=0",
        "data.test_subset=64", "trainer.epochs=1", "model.depth=8", "logger=none",
        cwd=tmp_path, env={"XDG_RUNTIME_DIR": str(runtime)},
    )  # fmt: skip
    other.release()
    assert result.returncode == 0, result.stderr
    expected = fair_share(cores, 2, 1)  # the younger of two leases
    line = next(x for x in result.stdout.splitlines() if "torch intra-op threads" in x)
    assert f"threads: {expected} (trainer.num_threads=null: 1 other resnet_exp run" in line
    assert f"takes {expected} of the {cores} cores" in line
