"""One writer per run or sweep folder; a sweep's workers end with it (issue 21, class 2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli import cli_env, run_cli, start_cli

from resnet_exp.tracking.folder_lock import FolderBusy, FolderLock


def test_a_second_lock_is_refused_naming_the_holder_and_a_closed_one_is_free(
    tmp_path: Path,
) -> None:
    first = FolderLock(tmp_path, "the run folder").acquire()
    with pytest.raises(FolderBusy) as info:
        FolderLock(tmp_path, "the run folder").acquire()
    assert f"in use by pid {os.getpid()} on host" in str(info.value)
    assert "\n" not in str(info.value)
    first.release()
    FolderLock(tmp_path, "the run folder").acquire().release()


def test_a_killed_holder_leaves_no_lock(tmp_path: Path) -> None:
    import sys

    code = (
        "import os, signal, sys; from pathlib import Path\n"
        "from resnet_exp.tracking.folder_lock import FolderLock\n"
        f"FolderLock(Path({str(tmp_path)!r}), 'x').acquire(); print('held', flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL and "held" in done.stdout
    FolderLock(tmp_path, "the run folder").acquire().release()


def _tiny(root: Path, *extra: str) -> list[str]:
    return [
        f"data.root={root}",
        "data.train_subset=4000",
        "data.val_size=32",
        "data.test_subset=32",
        "data.batch_size=32",
        "model/depth=8",
        "trainer.epochs=3",
        "trainer.num_threads=1",
        "trainer.progress=false",
        "trainer.response_images=0",
        "logger=none",
        *extra,
    ]


def _wait_until_running(folder: Path, jobs: int, process: subprocess.Popen) -> list[Path]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        running = []
        for path in folder.glob("*/summary.json"):
            try:
                if json.loads(path.read_text())["status"] == "running":
                    running.append(path.parent)
            except (ValueError, KeyError):
                continue
        if len(running) >= jobs:
            return running
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    raise AssertionError("the sweep never started training")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


@pytest.mark.slow
def test_a_sweep_folder_has_one_writer_and_its_workers_die_with_it(
    tmp_path: Path, fmnist_root: Path
) -> None:
    """Members the issue does not name: a second sweep into a running sweep's folder, a single run
    into one of its job folders, and SIGKILL (not SIGTERM) to the sweep's process."""
    sweep = tmp_path / "sweep"
    args = ["--multirun", "seed=1,2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
            *_tiny(fmnist_root, f"hydra.sweep.dir={sweep}")]  # fmt: skip
    process = start_cli(*args, cwd=tmp_path)
    try:
        jobs = _wait_until_running(sweep, 2, process)
        second = run_cli(*args, cwd=tmp_path)
        assert second.returncode == 2, second.stderr
        assert f"the sweep folder {str(sweep)!r} is in use by pid {process.pid}" in second.stderr
        assert "Traceback" not in second.stderr

        into_job = run_cli(*_tiny(fmnist_root, f"hydra.run.dir='{jobs[0]}'"), cwd=tmp_path)
        assert into_job.returncode == 2, into_job.stderr
        assert "the run folder" in into_job.stderr and "is in use by pid" in into_job.stderr

        workers = [int(p) for p in os.popen(f"pgrep -P {process.pid}").read().split()]
        assert workers
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        deadline = time.monotonic() + 60
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(w) for w in workers), "loky workers outlived the sweep"
        for job in jobs:
            assert json.loads((job / "summary.json").read_text())["status"] == "terminated"
            assert (job / "checkpoints" / "last.pt").is_file()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _terminal_group() -> None:
    """A process group of its own (a terminal's Ctrl-C goes to the group), SIGINT as default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.setsid()


@pytest.mark.slow
def test_ctrl_c_to_a_joblib_sweep_records_every_job_as_interrupted(
    tmp_path: Path, fmnist_root: Path
) -> None:
    """Ctrl-C reaches the whole process group; joblib then kills its workers, some before they
    could record it: the sweep's process records those, and says the jobs were training."""
    sweep = tmp_path / "sweep"
    args = ["--multirun", "seed=1,2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
            *_tiny(fmnist_root, f"hydra.sweep.dir={sweep}")]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "resnet_exp", *args], cwd=tmp_path, env=cli_env(tmp_path),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=_terminal_group,
    )  # fmt: skip
    try:
        jobs = _wait_until_running(sweep, 2, process)
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, err
    assert "during start-up" not in err and "Traceback" not in err
    assert "the sweep's running jobs stop at their next step" in err
    for job in jobs:
        assert json.loads((job / "summary.json").read_text())["status"] == "interrupted"
    status = run_cli(str(sweep), cwd=tmp_path, module="resnet_exp.status")
    assert "2 jobs: 2 interrupted" in " ".join(status.stdout.split()), status.stdout


@pytest.mark.parametrize("odd", ["fifo", "directory", "symlink"])
def test_an_odd_writer_lock_is_one_warning_never_followed_or_waited_on(
    tmp_path: Path, odd: str, caplog: pytest.LogCaptureFixture
) -> None:
    from resnet_exp.tracking.folder_lock import LOCK_NAME, in_use

    lock, target = tmp_path / LOCK_NAME, tmp_path / "precious.txt"
    target.write_text("keep me")
    {"fifo": lambda: os.mkfifo(lock), "directory": lock.mkdir,
     "symlink": lambda: lock.symlink_to(target)}[odd]()  # fmt: skip
    signal.alarm(60)
    try:
        assert not in_use(tmp_path)
        with FolderLock(tmp_path, "run folder"):
            pass
    finally:
        signal.alarm(0)
    assert target.read_text() == "keep me"  # a link is never followed (nor truncated)
    assert len([r for r in caplog.records if "cannot lock" in r.getMessage()]) == 1
