"""Every signal ends cleanly (issue 21, class 9): SIGHUP like SIGTERM, and the temp files of a
write killed half-way are cleaned when the run starts again."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from cli import run_cli, start_cli
from test_failures import small

from resnet_exp.training.interrupt import Interrupted


def test_sighup_is_recorded_as_terminated_with_exit_129() -> None:
    stopped = Interrupted(signal.SIGHUP)
    assert (stopped.status, stopped.exit_code) == ("terminated", 129)


@pytest.mark.slow
def test_a_hung_up_run_ends_in_one_line_and_resumes_past_a_killed_write(
    tmp_path: Path, fmnist_root: Path
) -> None:
    """Members the issue does not name: SIGHUP during the first epoch of a run that saves every
    5 steps, and temp files of both a checkpoint and summary.json left by a SIGKILL."""
    run = tmp_path / "run"
    args = small(fmnist_root, "data.train_subset=3200", "trainer.epochs=2",
                 "trainer.checkpoint_every_steps=5", "trainer.log_every_steps=1",
                 f"hydra.run.dir={run}")  # fmt: skip
    process = start_cli(*args, cwd=tmp_path)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        metrics = run / "metrics.jsonl"
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 7:
            break
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGHUP)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 129, err
    assert err.strip().startswith("terminated by SIGHUP: checkpoint saved to"), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert json.loads((run / "summary.json").read_text())["status"] == "terminated"

    leftovers = [run / "checkpoints" / ".last.pt.k1ll3d.tmp", run / ".summary.json.k1ll3d.tmp"]
    for path in leftovers:
        path.write_bytes(b"half a file")
    done = run_cli(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["attempts"] == 2
    assert not any(p.exists() for p in leftovers)
