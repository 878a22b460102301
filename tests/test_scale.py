"""Scale-out: joblib and SLURM sweeps, and DDP under torchrun (CPU, gloo), end to end on real data.

SLURM tests need the single-node cluster of .ci/slurm/start.sh (CI starts it; locally run it as
root) and skip with the reason otherwise.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli import fault_env, run_cli

TINY = [
    "data.train_subset=256",
    "data.val_size=64",
    "data.test_subset=128",
    "trainer.epochs=1",
    "trainer.progress=false",
]
SWEEP = "seed=0,1,2,3"
# DDP vs one process: identical but for BatchNorm, which normalises each rank's half of the global
# batch (64 images) with that half's statistics instead of the whole batch's (128). Measured:
# train loss 0.15% apart after 2 epochs; test error 0.8 points (1 of 128 images).
LOSS_RTOL = 0.03
TEST_ERR_ATOL = 5.0  # percentage points (6 of 128 test images)
# The losses cannot tell a DDP run whose gradients are never all-reduced (each rank then trains on
# its own half of the data) from a correct one: measured 0.4% vs 0.6% apart. The weights can.
# After 8 fp32 steps of ResNet-8, rank 0's distance from the one-process weights, relative to how
# far the one-process weights moved from their initial values: measured 0.15 for DDP, 0.49 without
# the all-reduce (tests/mutants.py, mutant ddp_no_allreduce).
WEIGHT_REL_TOL = 0.3


def only_sweep_dir(cwd: Path) -> Path:
    sweeps = [p.parent for p in (cwd / "outputs" / "multirun").glob("*/*/multirun.yaml")]
    assert len(sweeps) == 1, sweeps
    return sweeps[0]


def summaries(sweep: Path) -> dict[str, dict]:
    """Each job's summary.json by its seed (job folders are named after their overrides)."""
    found = (json.loads(p.read_text()) for p in sweep.glob("*/summary.json"))
    return {str(s["seed"]): s for s in found}


def job_dir_of(sweep: Path, override: str) -> Path:
    """The job folder whose overrides include ``override`` (e.g. ``seed=2``)."""
    import yaml

    (found,) = [
        p.parent.parent
        for p in sweep.glob("*/.hydra/overrides.yaml")
        if override in yaml.safe_load(p.read_text())
    ]
    return found


def report_rows(sweep: Path) -> list[dict]:
    """summary.csv's row per run (it also has a row per configuration, seeds pooled)."""
    with open(sweep / "summary.csv", newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["row"] == "run"]


def wandb_groups(job_dirs: list[Path]) -> set[str]:
    from wandb_files import read_offline_run

    return {read_offline_run(d)["group"] for d in job_dirs}


@pytest.mark.slow
def test_joblib_sweep_runs_jobs_in_parallel_with_one_thread_each(
    tmp_path: Path, fmnist_root: Path
) -> None:
    result = run_cli(
        "--multirun",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"data.root={fmnist_root}",
        *TINY,
        SWEEP,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = only_sweep_dir(tmp_path)
    jobs = sorted(p for p in sweep.iterdir() if (p / ".hydra").is_dir())
    assert sorted(summaries(sweep)) == ["0", "1", "2", "3"] and len(jobs) == 4
    assert {s["status"] for s in summaries(sweep).values()} == {"completed"}
    for job in jobs:  # n_jobs=2 on 2+ cores: each job takes cores // 2 threads
        cores = len(os.sched_getaffinity(0))
        log_text = (job / "resnet_exp.log").read_text()
        assert f"torch intra-op threads: {max(1, cores // 2)}" in log_text
    groups = wandb_groups(jobs)
    assert len(groups) == 1 and None not in groups, groups
    rows = report_rows(sweep)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"completed"}
    assert (sweep / "report.md").is_file()


def slurm_up() -> str | None:
    """None if the CI cluster answers, else why not."""
    if shutil.which("sinfo") is None or shutil.which("sacct") is None:
        return "no SLURM client here (CI starts one with .ci/slurm/start.sh)"
    probe = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0 or not {"idle", "mixed", "allocated"} & set(probe.stdout.split()):
        return f"SLURM cluster not up (sinfo: {probe.stdout.strip() or probe.stderr.strip()})"
    if subprocess.run(["sacct", "-n", "-X"], capture_output=True, timeout=30).returncode != 0:
        return "SLURM accounting (sacct) is off; run .ci/slurm/start.sh"
    return None


@pytest.mark.slow
def test_slurm_sweep_reports_a_killed_job_as_failed_and_ends(
    tmp_path: Path, fmnist_root: Path
) -> None:
    reason = slurm_up()
    if reason:
        pytest.skip(reason)
    started = time.monotonic()
    result = run_cli(
        "--multirun",
        "hydra/launcher=slurm",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1",
        "hydra.launcher.timeout_min=10",
        f"data.root={fmnist_root}",
        *TINY,
        SWEEP,
        cwd=tmp_path,
        # the seed=2 job SIGKILLs itself (like the OOM killer would): tests/faults/sitecustomize.py
        env=fault_env(kill_job="seed=2"),
        timeout=900,  # bounded: submitit would otherwise wait for the dead job forever
    )
    elapsed = time.monotonic() - started
    assert result.returncode != 0, "a dead job fails the sweep"
    assert "SLURM job" in result.stderr and "FAILED" in result.stderr, result.stderr[-3000:]
    sweep = only_sweep_dir(tmp_path)
    assert list(sweep.glob(".submitit/*")), "submitit's folder lives inside the sweep dir"
    done = summaries(sweep)
    # the killed job had written its record ("running") when it died: the launcher marks it failed
    assert {k: v["status"] for k, v in done.items()} == {
        "0": "completed",
        "1": "completed",
        "2": "failed",
        "3": "completed",
    }
    assert done["2"]["error"].startswith("DeadJobError") and "FAILED" in done["2"]["error"]
    rows = report_rows(sweep)
    assert len(rows) == 4
    assert sorted(r["status"] for r in rows) == ["completed"] * 3 + ["failed"]
    finished = [job_dir_of(sweep, f"seed={k}") for k, v in done.items() if v["status"] != "failed"]
    assert len(wandb_groups(finished)) == 1  # (the SIGKILLed job's offline W&B file is empty)
    print(f"SLURM sweep with a killed job ended after {elapsed:.0f} s")


# How long the requeue test's job trains uninterrupted: past SLURM's signal (<= ~120 s in);
# each attempt then gets ~90 s of training, so 2-4 attempts (max_num_timeout allows 10).
REQUEUE_JOB_S = 180.0


def epochs_lasting(seconds: float, job: list[str], cwd: Path) -> int:
    """Enough epochs of ``job`` to train for ``seconds`` on this machine, from a short run's median
    epoch time (the machine's speed is not known in advance: CI machines differ fourfold)."""
    import statistics

    probe = run_cli("--multirun", *job, "trainer.epochs=12", "logger=none",
                    "hydra.sweep.dir=speed_probe", cwd=cwd)  # fmt: skip
    assert probe.returncode == 0, probe.stderr[-3000:]
    rows = metrics(job_dir_of(cwd / "speed_probe", "seed=1"))[1:]  # the first epoch warms up
    epoch_s = statistics.median(r["time/epoch_s"] for r in rows)
    shutil.rmtree(cwd / "speed_probe")
    return max(250, int(seconds / epoch_s) + 1)


@pytest.mark.slow
def test_slurm_job_past_its_time_limit_is_requeued_and_ends_like_an_uninterrupted_run(
    tmp_path: Path, fmnist_root: Path
) -> None:
    """timeout_min=2 and signal_delay_s=30: SLURM signals the job 60-120 s in (its timer is coarse);
    submitit requeues it and it resumes. The job's epochs are sized from this machine's measured
    speed so that it is still training then (a fixed 250 epochs ended in 75 s on a fast CI machine,
    before SLURM's signal came)."""
    from wandb_files import read_offline_runs

    reason = slurm_up()
    if reason:
        pytest.skip(reason)
    job = [
        "seed=1", f"data.root={fmnist_root}", "data.train_subset=640", "data.val_size=64",
        "data.test_subset=64", "data.batch_size=32", "model/depth=8",
        "trainer.checkpoint_every_steps=5", "trainer.num_threads=1", "trainer.progress=false",
    ]  # fmt: skip
    job.append(f"trainer.epochs={epochs_lasting(REQUEUE_JOB_S, job, tmp_path)}")
    started = time.monotonic()
    reference = run_cli("--multirun", *job, "logger=none", "hydra.sweep.dir=reference",
                        cwd=tmp_path, timeout=1500)  # fmt: skip
    uninterrupted_s = time.monotonic() - started
    assert reference.returncode == 0, reference.stderr[-3000:]
    started = time.monotonic()
    result = run_cli(
        "--multirun", "hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=2",
        "hydra.launcher.signal_delay_s=30", "hydra.launcher.max_num_timeout=10", *job,
        "logger.mode=offline", "hydra.sweep.dir=requeued", cwd=tmp_path, timeout=1500,
    )  # fmt: skip
    requeued_s = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = job_dir_of(tmp_path / "requeued", "seed=1")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["attempts"] >= 2, "the job was not requeued"
    logs = (tmp_path / "requeued").glob(".submitit/*/*.out")
    assert "Requeued job" in "".join(p.read_text() for p in logs)

    def untimed(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k not in ("time/epoch_s", "throughput/img_s")}
                for r in rows]  # fmt: skip

    reference_dir = job_dir_of(tmp_path / "reference", "seed=1")
    assert untimed(metrics(run_dir)) == untimed(metrics(reference_dir))  # an uninterrupted run's
    attempts = read_offline_runs(run_dir, include_internal=True)
    unfinished = list(run_dir.glob("wandb/unfinished/*run-*"))  # a preempted attempt's, if any
    assert len(attempts) + len(unfinished) == summary["attempts"]  # one W&B folder per attempt
    assert {a["run_id"] for a in attempts if a["history"]} == {summary["wandb_run_id"]}
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    steps = sorted({json.loads(line)["step"] for line in lines})  # epoch and per-step rows
    assert [r["_step"] for a in attempts for r in a["history"]] == steps  # each once, in order
    print(f"requeued SLURM job: {summary['attempts']} attempts, {requeued_s:.0f} s; "
          f"uninterrupted (local): {uninterrupted_s:.0f} s")  # fmt: skip


def torchrun(*args: str, cwd: Path, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    env = {
        **os.environ,
        **(extra_env or {}),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(cwd),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("WANDB_API_KEY", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    return subprocess.Popen(
        [*command, "--nproc_per_node=2", "-m", "resnet_exp", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: a hung run can be killed whole
    )


def finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"torchrun did not finish:\n{out[-3000:]}")
    return out


def metrics(run_dir: Path) -> list[dict]:
    """The epoch rows of metrics.jsonl (per-step training rows left out)."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [row for row in map(json.loads, lines) if "epoch" in row]


def rank_checksums(output: str) -> dict[int, str]:
    """Each rank's ``rank R weights sha256 H`` line (logged at the end of a DDP run when
    trainer.debug_checksum=true)."""
    import re

    return {int(r): h for r, h in re.findall(r"rank (\d+) weights sha256 ([0-9a-f]{64})", output)}


def final_weights(run_dir: Path) -> dict:
    import torch

    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]


def relative_weight_distance(a: dict, b: dict, init: dict) -> float:
    """|a - b| / |b - init| over the trainable tensors (BatchNorm running statistics left out)."""
    import torch

    keys = [k for k in b if b[k].is_floating_point() and "running_" not in k]
    flat = [torch.cat([d[k].flatten().float() for k in keys]) for d in (a, b, init)]
    return float((flat[0] - flat[1]).norm() / (flat[1] - flat[2]).norm())


@pytest.mark.slow
def test_torchrun_two_cpu_processes_match_one_process_and_write_one_run(
    tmp_path: Path, fmnist_root: Path
) -> None:
    import torch
    from hydra.utils import instantiate

    from resnet_exp.hydra_glue.compose import compose

    # 512 training images at a global batch of 128: 4 steps per epoch, 8 in all (64 per rank).
    tiny = [a for a in TINY if not a.startswith(("data.train_subset", "trainer.epochs"))]
    args = [
        f"data.root={fmnist_root}",
        *tiny,
        "data.train_subset=576",
        "trainer.epochs=2",
        "trainer.device=cpu",
        "trainer.precision=32",  # auto may pick bf16 on one machine: compare fp32 with fp32
        "model.depth=8",
    ]
    (tmp_path / "ddp").mkdir()
    out = finish(torchrun(*args, "trainer.debug_checksum=true", cwd=tmp_path / "ddp"))
    (tmp_path / "one").mkdir()
    single = run_cli(*args, "logger=none", cwd=tmp_path / "one")
    assert single.returncode == 0, single.stderr[-3000:]

    runs = list((tmp_path / "ddp" / "outputs").glob("*/*"))
    assert len(runs) == 1, (runs, out[-3000:])  # both ranks agreed on one run dir
    run = runs[0]
    assert sorted(p.name for p in (run / ".hydra").iterdir()) == [
        "config.yaml",
        "hydra.yaml",
        "overrides.yaml",
    ]
    assert [p.name for p in run.glob("*.log")] == ["resnet_exp.log"]
    assert len(list(run.glob("wandb/offline-run-*"))) == 1, "only rank 0 logs to W&B"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed"
    ddp = metrics(run)
    assert [r["epoch"] for r in ddp] == [1, 2], "only rank 0 writes metrics"
    one_run = next((tmp_path / "one" / "outputs").glob("*/*"))
    one = metrics(one_run)
    for a, b in zip(ddp, one):
        assert a["train/loss"] == pytest.approx(b["train/loss"], rel=LOSS_RTOL), (a, b)
        assert a["step"] == b["step"]  # same global batch: same number of optimizer steps
    assert ddp[-1]["step"] == 8
    assert abs(ddp[-1]["test/err"] - one[-1]["test/err"]) <= TEST_ERR_ATOL

    # every rank ends with the same weights ...
    sums = rank_checksums(out)
    assert sorted(sums) == [0, 1], out[-3000:]
    assert sums[0] == sums[1], "ranks disagree: gradients were not all-reduced"
    # ... and they are close to one process's weights trained on the same global batches
    torch.manual_seed(0)  # app.run seeds, then builds the model: its initial weights
    init = instantiate(compose(args[1:]).model).state_dict()
    distance = relative_weight_distance(final_weights(run), final_weights(one_run), init)
    print(f"DDP vs one process: relative weight distance {distance:.3f}")
    assert distance < WEIGHT_REL_TOL


@pytest.mark.slow
def test_slurm_tasks_per_node_make_each_job_one_ddp_run(tmp_path: Path, fmnist_root: Path) -> None:
    """hydra.launcher.tasks_per_node=2: two SLURM tasks join one gloo process group (no torchrun),
    write one record, and end the epoch with bit-identical weights."""
    reason = slurm_up()
    if reason:
        pytest.skip(reason)
    args = ["seed=1", f"data.root={fmnist_root}", *TINY, "trainer.device=cpu"]
    result = run_cli(
        "--multirun", "hydra/launcher=slurm", "hydra.launcher.tasks_per_node=2",
        "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=4",
        "hydra.launcher.timeout_min=10", *args, "trainer.debug_checksum=true",
        "logger.mode=offline", "hydra.sweep.dir=ddp",
        cwd=tmp_path, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run = job_dir_of(tmp_path / "ddp", "seed=1")
    assert len(list((tmp_path / "ddp").glob("*/.hydra"))) == 1  # one job folder
    assert sorted(p.name for p in (run / ".hydra").iterdir()) == [
        "config.yaml",
        "hydra.yaml",
        "overrides.yaml",
    ]
    assert [p.name for p in run.glob("*.log")] == ["resnet_exp.log"]
    assert len(list(run.glob("wandb/offline-run-*"))) == 1, "only rank 0 logs to W&B"
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    logs = "".join(p.read_text() for p in (tmp_path / "ddp").glob(".submitit/*/*_log.*"))
    checksums = rank_checksums(logs)  # each task logs the hash of its weights at the end
    assert sorted(checksums) == [0, 1], logs[-3000:]  # the second task trained too
    assert len(set(checksums.values())) == 1, checksums  # bit-identical weights
    single = run_cli("--multirun", *args, "logger=none", "hydra.sweep.dir=one", cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-3000:]
    ddp, one = (
        [r for r in metrics(d) if "epoch" in r]
        for d in (run, job_dir_of(tmp_path / "one", "seed=1"))
    )
    assert [r["epoch"] for r in ddp] == [1]  # one writer
    # loss and error over both tasks' shards (all-reduced), so close to one process's
    assert ddp[0]["train/loss"] == pytest.approx(one[0]["train/loss"], rel=LOSS_RTOL)
    assert ddp[0]["step"] == one[0]["step"]  # the global batch: the same optimizer steps


@pytest.mark.slow
def test_killed_torchrun_run_resumes_from_its_checkpoint(tmp_path: Path, fmnist_root: Path) -> None:
    run_dir = tmp_path / "run"
    args = [
        f"data.root={fmnist_root}",
        "data.train_subset=896",
        "data.val_size=64",
        "data.test_subset=128",
        "trainer.epochs=3",
        "trainer.progress=false",
        "trainer.device=cpu",
        "logger=none",
        f"hydra.run.dir={run_dir}",
    ]
    # 7 steps per epoch: every rank SIGKILLs itself at step 10, mid-epoch 2 (injected by
    # tests/faults/sitecustomize.py); torchrun then reports the failure and stops.
    out = finish(torchrun(*args, cwd=tmp_path, extra_env=fault_env(kill_at="step:10")))
    before = metrics(run_dir)
    assert [r["epoch"] for r in before] == [1], out[-3000:]
    assert not (run_dir / "summary.json").exists() or (
        json.loads((run_dir / "summary.json").read_text())["status"] != "completed"
    )

    out = finish(torchrun(*args, cwd=tmp_path))
    assert out.count("resumed from") >= 2, out[-3000:]  # both ranks loaded the checkpoint
    after = metrics(run_dir)
    assert [r["epoch"] for r in after] == [1, 2, 3]
    assert after[: len(before)] == before
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


@pytest.mark.parametrize(
    ("cuda", "free_gib", "cpus", "expected"),
    [
        (True, 139, 16, 8),  # an H200 box: the cores, not the memory, set the number
        (True, 10, 16, 2),  # a small or busy GPU: 4 GiB per job
        (True, 1, 16, 1),  # nearly full: still one job
        (True, 139, 2, 1),
        (False, 0, 16, 16),  # CPU only: one job per core
    ],
)
def test_local_jobs_share_one_gpu_by_free_memory_and_cores(
    monkeypatch: pytest.MonkeyPatch, cuda: bool, free_gib: int, cpus: int, expected: int
) -> None:
    import torch

    from resnet_exp.hydra_glue import gpu_slots, launchers

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: int(cuda))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (free_gib * 2**30, 141 * 2**30))
    monkeypatch.setattr(launchers, "available_cpus", lambda: cpus)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)))
    monkeypatch.setenv(gpu_slots.PLAN_ENV, "")  # the plan it publishes is undone after the test
    assert launchers.local_jobs() == expected


@pytest.mark.slow  # a CLI process
def test_gpu_study_preset_runs_its_jobs_side_by_side(tmp_path: Path) -> None:
    result = run_cli("experiment=degradation_fashionmnist", "--cfg", "hydra", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "JoblibLauncher" in result.stdout
    assert "n_jobs: ${resnet_exp.local_jobs:}" in result.stdout
