"""A joblib sweep uses every GPU of a node: the slot plan, and jobs claiming and reusing slots."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from resnet_exp.hydra_glue import gpu_slots
from resnet_exp.hydra_glue.gpu_slots import Slot, claim, from_env, plan, predicted, to_env

GIB = 2**30


def devices(slots: list[Slot]) -> list[str]:
    return [s.device for s in slots]


def test_no_gpu_no_slots() -> None:
    assert plan([], list(range(16))) == []


def test_an_h200_node_is_bound_by_its_cores() -> None:
    slots = plan([139 * GIB], list(range(16)))
    assert devices(slots) == ["cuda:0"] * 8  # 139 GiB // 4 = 34, but 16 cores // 2 = 8
    assert [s.cores for s in slots] == [(2 * i, 2 * i + 1) for i in range(8)]


def test_jobs_are_dealt_to_the_gpus_in_turn_up_to_each_ones_memory() -> None:
    slots = plan([80 * GIB, 80 * GIB, 10 * GIB, 80 * GIB], list(range(32)))
    assert len(slots) == 16  # 32 cores // 2
    assert devices(slots)[:4] == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    counts = {d: devices(slots).count(d) for d in set(devices(slots))}
    assert counts == {"cuda:0": 5, "cuda:1": 5, "cuda:2": 2, "cuda:3": 4}  # 10 GiB: 2 jobs
    cores = [c for s in slots for c in s.cores]
    assert sorted(cores) == list(range(32)) and len(set(cores)) == 32  # no core shared


def test_small_or_busy_gpus_still_get_one_job_and_leftover_cores_go_first() -> None:
    slots = plan([1 * GIB, 3 * GIB], [0, 1, 2, 3])
    assert devices(slots) == ["cuda:1"] and slots[0].cores == (0, 1, 2, 3)
    slots = plan([8 * GIB, 8 * GIB], [0, 1, 2, 3, 4])  # 2 + 2 by memory, 5 // 2 = 2 by cores
    assert [s.cores for s in slots] == [(0, 1, 2), (3, 4)]
    assert devices(plan([80 * GIB, 80 * GIB], [0])) == ["cuda:0"]  # one core: one job


def test_the_plan_travels_to_the_workers_unchanged() -> None:
    slots = plan([40 * GIB, 40 * GIB], list(range(8)))
    assert from_env(to_env(slots)) == slots
    assert from_env(None) == [] and from_env("") == []


def test_cfg_job_names_each_jobs_device() -> None:
    slots = plan([40 * GIB, 40 * GIB], list(range(4)))
    assert predicted(0, slots) == "device: cuda:0 (joblib slot 0 of 2, cores 0-1)"
    assert predicted(1, slots) == "device: cuda:1 (joblib slot 1 of 2, cores 2-3)"
    assert predicted(2, slots).endswith("or whichever slot frees first")


HOLD = (
    "import sys, time; from pathlib import Path; from resnet_exp.hydra_glue import gpu_slots as g;"
    "s = g.claim(g.from_env(sys.argv[1]), Path(sys.argv[2])); print(s.device, flush=True);"
    "time.sleep(60)"
)


def hold_slot(slots: list[Slot], sweep: Path) -> tuple[subprocess.Popen, str]:
    """Another job (process) of the sweep that claims a slot and keeps it."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, to_env(slots), str(sweep)],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def test_running_jobs_hold_different_slots_and_a_finished_jobs_slot_is_reused(
    tmp_path: Path,
) -> None:
    slots = plan([40 * GIB, 40 * GIB], list(range(4)))
    first, first_device = hold_slot(slots, tmp_path)
    second, second_device = hold_slot(slots, tmp_path)
    try:
        assert {first_device, second_device} == {"cuda:0", "cuda:1"}  # both GPUs busy
        assert claim(slots, tmp_path) is None  # every slot taken (n_jobs set above the slots)
        os.kill(first.pid, signal.SIGKILL)  # a job ends, however it ends ...
        first.wait()
        mine = claim(slots, tmp_path)
        assert mine is not None and mine.device == first_device  # ... and its slot is reused
        gpu_slots.release()
        again = claim(slots, tmp_path)
        assert again == mine  # released by this process: free again
        gpu_slots.release()
    finally:
        for proc in (first, second):
            proc.kill()
            proc.wait()


def test_only_joblib_jobs_that_let_us_choose_their_gpu_get_a_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slots = plan([40 * GIB, 40 * GIB], list(range(4)))
    monkeypatch.setenv(gpu_slots.PLAN_ENV, to_env(slots))
    assert gpu_slots.for_job("cuda:1", tmp_path, distributed=False) is None  # the user's choice
    assert gpu_slots.for_job("cpu", tmp_path, distributed=False) is None
    assert gpu_slots.for_job("auto", None, distributed=False) is None  # a single run
    assert gpu_slots.for_job("auto", tmp_path, distributed=True) is None  # DDP: ranks own GPUs
    assert gpu_slots.for_job("auto", tmp_path, distributed=False) == slots[0]
    gpu_slots.release()
    monkeypatch.delenv(gpu_slots.PLAN_ENV)
    assert gpu_slots.for_job("auto", tmp_path, distributed=False) is None  # no plan: today's way


@pytest.mark.slow
def test_multirun_cfg_job_prints_the_device_each_joblib_job_gets(tmp_path: Path) -> None:
    from cli import run_cli

    two_gpus = to_env(plan([40 * GIB, 40 * GIB], list(range(4))))  # as a 2-GPU parent plans it
    result = run_cli("--multirun", "hydra/launcher=joblib", "seed=0,1,2", "logger=none",
                     "--cfg", "job", cwd=tmp_path, env={gpu_slots.PLAN_ENV: two_gpus})  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("# device:")]
    assert lines == [
        "# device: cuda:0 (joblib slot 0 of 2, cores 0-1)",
        "# device: cuda:1 (joblib slot 1 of 2, cores 2-3)",
        "# device: cuda:0 (joblib slot 0 of 2, cores 0-1), or whichever slot frees first",
    ]
    fixed = run_cli("--multirun", "hydra/launcher=joblib", "seed=0,1", "trainer.device=cuda:1",
                    "logger=none", "--cfg", "job", cwd=tmp_path,
                    env={gpu_slots.PLAN_ENV: two_gpus})  # fmt: skip
    assert "# job 1:" in fixed.stdout, fixed.stderr
    assert "# device:" not in fixed.stdout  # a numbered device is the user's choice: kept


@pytest.mark.parametrize("odd", ["file", "symlink", "fifo inside", "directory inside"])
def test_an_odd_slot_folder_is_skipped_with_one_warning_never_a_hang(
    tmp_path: Path, odd: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The job takes the default device instead of failing or waiting on a FIFO."""
    folder = tmp_path / gpu_slots.SLOT_DIR
    if odd == "file":
        folder.write_text("x")
    elif odd == "symlink":
        folder.symlink_to(tmp_path / "elsewhere")  # dangling: mkdir fails on it
    else:
        folder.mkdir()
        lock = folder / "0.lock"
        os.mkfifo(lock) if odd == "fifo inside" else lock.mkdir()
    signal.alarm(60)
    try:
        assert claim([Slot(0, "cuda:0", (0,))], tmp_path) is None
    finally:
        signal.alarm(0)
    warnings = [r for r in caplog.records if "GPU slots" in r.getMessage()]
    assert len(warnings) == 1 and str(folder) in warnings[0].getMessage()
