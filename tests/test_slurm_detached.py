"""Submit a SLURM sweep and walk away: the command returns in seconds, status follows the jobs,
the last job leaves the report, and re-running never submits a job still queued or running.
Needs the CI cluster (.ci/slurm/start.sh); skipped without it."""

from __future__ import annotations

import csv
import json
import subprocess
import time
from pathlib import Path

import pytest
from cli import run_cli
from test_scale import TINY, slurm_up

SLURM = ["--multirun", "hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1",
         "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=10", "seed=0,1,2,3",
         "logger=none", *TINY]  # fmt: skip
ERRORS = ("final_train_err", "best_val_err", "test_err_at_best_val")


def run_rows(sweep: Path) -> dict[str, tuple]:
    """summary.csv's errors and status per seed (times differ between two sweeps, errors not)."""
    with open(sweep / "summary.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["row"] == "run"]
    return {r["seed"]: (r["status"], *(r.get(k) for k in ERRORS)) for r in rows}


@pytest.mark.slow
def test_a_detached_sweep_returns_at_once_and_ends_like_a_waiting_one(
    tmp_path: Path, fmnist_root: Path
) -> None:
    reason = slurm_up()
    if reason:
        pytest.skip(reason)
    args = [*SLURM, f"data.root={fmnist_root}"]
    detached = tmp_path / "outputs/multirun/detached"
    # Held in the queue until the re-run below has looked (tiny jobs could all end before it
    # starts on a busy machine); released after it.
    held = [*args, "+hydra.launcher.additional_parameters.hold=true", "hydra.launcher.wait=false",
            f"hydra.sweep.dir={detached}"]  # fmt: skip
    started = time.monotonic()
    first = run_cli(*held, cwd=tmp_path, timeout=300)
    returned = time.monotonic() - started
    assert first.returncode == 0, first.stderr[-3000:]
    assert "submitted 4 SLURM jobs:" in first.stdout, first.stdout[-2000:]
    assert f"python -m resnet_exp.status {detached} --watch" in first.stdout
    entries = json.loads((detached / ".submitit/slurm_jobs.json").read_text())
    assert len(entries) == 4 and all(e["job_id"] in first.stdout for e in entries)
    assert returned < 60, returned  # seconds: start-up, pre-flight and sbatch, no training

    again = run_cli(*held, cwd=tmp_path, timeout=300)
    subprocess.run(["scontrol", "release", *(e["job_id"] for e in entries)], check=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "still queued or running, not submitted again:" in again.stdout, again.stdout[-2000:]
    entries = json.loads((detached / ".submitit/slurm_jobs.json").read_text())
    per_job: dict[str, int] = {}
    for entry in entries:
        seed = next(o for o in entry["overrides"] if o.startswith("seed="))
        per_job[seed] = per_job.get(seed, 0) + 1
    resubmitted = [s for s, n in per_job.items() if n > 1]
    marker = "still queued or running, not submitted again:"
    still = next(x for x in again.stdout.splitlines() if x.startswith(marker))[
        len(marker) :
    ].split()
    assert len(still) + len(resubmitted) == 4  # only jobs that had ended were submitted again

    watched = run_cli(str(detached), "--watch", "--interval", "2", module="resnet_exp.status",
                      cwd=tmp_path, timeout=900)  # fmt: skip
    detached_wall = time.monotonic() - started
    assert watched.returncode == 0, watched.stdout[-3000:]
    deadline = time.monotonic() + 120  # the last job rebuilds the report just after its record
    while time.monotonic() < deadline:
        rows = run_rows(detached) if (detached / "summary.csv").exists() else {}
        if len(rows) == 4 and all(r[0] == "completed" for r in rows.values()):
            break
        time.sleep(2)

    waiting = tmp_path / "outputs/multirun/waiting"
    started = time.monotonic()
    waited = run_cli(*args, f"hydra.sweep.dir={waiting}", cwd=tmp_path, timeout=900)
    waiting_wall = time.monotonic() - started
    assert waited.returncode == 0, waited.stderr[-3000:]
    assert run_rows(detached) == run_rows(waiting)
    print(
        f"detached: returned after {returned:.1f} s, all done after {detached_wall:.0f} s; "
        f"waiting: {waiting_wall:.0f} s"
    )
