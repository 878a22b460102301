"""Sweeps that survive: jobs known by their configuration, one command resumes or extends a sweep,
sweep folders never collide (SPEC §6, §8)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from cli import run_cli

from resnet_exp.hydra_glue.command import parse_command
from resnet_exp.hydra_glue.compose import compose
from resnet_exp.hydra_glue.folders import claim
from resnet_exp.hydra_glue.preflight import claim_sweep_dir as claim_for
from resnet_exp.tracking.identity import folder_name
from resnet_exp.training.job_plan import ForeignJobFolder, plan_job

TIMING = {"time/epoch_s", "throughput/img_s"}


# -- job folders, plans and sweep folders (no training) -------------------------------------------


def claim_sweep_dir(args: list[str]) -> list[str]:
    """The command line the entry point hands Hydra after claiming a sweep folder for ``args``."""
    return list(claim_for(parse_command(args)).args)


def subdir(*overrides: str) -> str:
    return str(compose(list(overrides), return_hydra_config=True).hydra.sweep.subdir)


def test_a_jobs_folder_is_named_by_what_it_computes_whatever_the_overrides_order() -> None:
    name = subdir("model/depth=8", "seed=1", "optimizer.lr=0.05")
    assert name == subdir("seed=1", "optimizer.lr=0.05", "model/depth=8")
    assert name.startswith("8_optimizer.lr=0.05_seed=1-")  # the model's part first
    assert subdir("model/depth=8", "seed=2") != subdir("model/depth=8", "seed=1")  # replicates
    # where the data lives or how W&B logs does not make another job: the same hash
    elsewhere = subdir("model/depth=8", "data.root=/a", "logger=none")
    assert elsewhere[-8:] == subdir("model/depth=8")[-8:]
    long = folder_name(["x" * 300 + "=1"], "k1")
    assert len(long) <= 80 and long != folder_name(["x" * 300 + "=1"], "k2")
    jobs = [["model/block=plain", "model/depth=56", "seed=3", "trainer.epochs=2"],
            ["model/block=basic", "model/depth=20", "seed=4", "trainer.epochs=2"]]  # fmt: skip
    assert folder_name(jobs[0], "k", jobs).startswith("plain-56_seed=3-")


def _job(folder: Path, status: str | None, key: str, checkpoint: bool = False) -> Path:
    folder.mkdir(parents=True)
    if status is not None:
        summary = {"status": status, "config_key": key, "epochs_planned": 3}
        (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n{"epo')  # torn last line
    if checkpoint:
        (folder / "checkpoints").mkdir()
        (folder / "checkpoints" / "last.pt").write_bytes(b"x")
    return folder


def test_the_plan_for_each_state_of_a_job_folder(tmp_path: Path) -> None:
    key = json.dumps({"optimizer.lr": 0.1, "seed": 1})
    assert plan_job(tmp_path / "new", key).action == "start"
    done = plan_job(_job(tmp_path / "done", "completed", key), key)
    assert (done.action, done.summary["status"]) == ("skip", "completed")
    assert plan_job(_job(tmp_path / "nan", "diverged", key), key).action == "skip"
    killed = plan_job(_job(tmp_path / "killed", "running", key, checkpoint=True), key)
    assert (killed.action, killed.reason) == ("resume", "resume after epoch 2 of 3")
    failed = plan_job(_job(tmp_path / "failed", "failed", key, checkpoint=True), key)
    assert (failed.action, failed.reason) == ("resume", "resume after epoch 2 of 3 (failed)")
    assert plan_job(_job(tmp_path / "early", "failed", key), key).action == "start"


def test_a_folder_of_another_configuration_is_refused_with_advice_for_a_sweep(
    tmp_path: Path,
) -> None:
    old = json.dumps({"optimizer.lr": 0.1, "seed": 1})
    new = json.dumps({"optimizer.lr": 0.05, "seed": 1})
    folder = _job(tmp_path / "sweep" / "job", "completed", old)
    with pytest.raises(ForeignJobFolder) as caught:
        plan_job(folder, new, tmp_path / "sweep")
    message = str(caught.value)
    assert "optimizer.lr=0.1 there, 0.05 now" in message
    assert "hydra.sweep.dir=outputs/multirun/<new name>" in message
    assert "hydra.run.dir" not in message  # single-run advice does not fit a sweep


def test_claiming_a_folder_twice_gives_two_folders(tmp_path: Path) -> None:
    first, second = claim(str(tmp_path / "s")), claim(str(tmp_path / "s"))
    assert (first, second) == (str(tmp_path / "s"), str(tmp_path / "s-2"))


def test_the_entry_point_claims_a_sweep_folder_only_for_a_sweep_without_a_fixed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert claim_sweep_dir(["model/depth=8"]) == ["model/depth=8"]  # a single run
    named = ["-m", "seed=1,2", "hydra.sweep.dir=outputs/multirun/mine"]
    assert claim_sweep_dir(named) == named  # a named sweep: the same folder every time
    assert claim_sweep_dir(["-m", "seed=1,2", "--cfg", "job"]) == ["-m", "seed=1,2", "--cfg", "job"]
    pattern = ["-m", "seed=1,2", "hydra.sweep.dir=sw/a${now:%Y}"]
    first, second = claim_sweep_dir(pattern), claim_sweep_dir(pattern)
    year = time.strftime("%Y")
    assert first[-1] == f"hydra.sweep.dir=sw/a{year}"
    assert second[-1] == f"hydra.sweep.dir=sw/a{year}-2"
    assert sorted(p.name for p in (tmp_path / "sw").iterdir()) == [f"a{year}", f"a{year}-2"]


# -- real sweeps ----------------------------------------------------------------------------------


def tiny(root: Path, sweep: Path, seeds: str) -> list[str]:
    """Three epochs of two steps of a depth-8 net per job."""
    return [
        "--multirun",
        f"seed={seeds}",
        f"data.root={root}",
        "data.train_subset=96",
        "data.val_size=32",
        "data.test_subset=32",
        "data.batch_size=32",
        "model/depth=8",
        "trainer.epochs=3",
        "trainer.num_threads=1",
        "trainer.progress=false",
        "logger.mode=offline",
        f"hydra.sweep.dir={sweep}",
    ]


def jobs_by_seed(sweep: Path) -> dict[int, Path]:
    found = {}
    for overrides in sweep.glob("*/.hydra/overrides.yaml"):
        seeds = [o for o in yaml.safe_load(overrides.read_text()) if o.startswith("seed=")]
        found[int(seeds[0].split("=")[1])] = overrides.parent.parent
    return found


def summary(job: Path) -> dict:
    return json.loads((job / "summary.json").read_text())


def untimed_rows(job: Path) -> list[dict]:
    rows = [json.loads(x) for x in (job / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def snapshot(job: Path) -> dict[str, bytes]:
    return {n: (job / n).read_bytes() for n in ("metrics.jsonl", "summary.json")}


def env_for(cwd: Path) -> dict[str, str]:
    return {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(cwd),
        "WANDB_CONFIG_DIR": str(cwd / ".wandb-config"),
        "HYDRA_FULL_ERROR": "0",
    }


def kill_when_second_job_has_a_checkpoint(args: list[str], cwd: Path, sweep: Path) -> None:
    """Start the sweep, SIGKILL its process group once one job completed and the next one has
    written a checkpoint (so it is half-way through its epochs)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "resnet_exp", *args],
        cwd=cwd,
        env=env_for(cwd),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            states = []
            for job in sweep.glob("*/summary.json"):
                try:
                    state = json.loads(job.read_text())["status"]
                except (ValueError, KeyError):
                    continue
                states.append((state, (job.parent / "checkpoints" / "last.pt").is_file()))
            if ("completed", True) in states and ("running", True) in states:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=60)
                return
            assert process.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.02)
        raise AssertionError("the sweep never reached its second job")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.slow
def test_a_killed_sweep_resumes_with_the_same_command_and_extends_with_new_values(
    tmp_path: Path, fmnist_root: Path
) -> None:
    from wandb_files import read_offline_runs

    # the reference: the same three jobs, never interrupted
    reference = tmp_path / "reference"
    done = run_cli(*tiny(fmnist_root, reference, "1,2,3"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = {seed: untimed_rows(job) for seed, job in jobs_by_seed(reference).items()}

    sweep = tmp_path / "outputs" / "multirun" / "seeds"
    args = tiny(fmnist_root, sweep, "1,2,3")
    kill_when_second_job_has_a_checkpoint(args, tmp_path, sweep)
    jobs = jobs_by_seed(sweep)
    first, second = sorted(jobs, key=lambda s: summary(jobs[s])["status"])  # completed, running
    finished_before = snapshot(jobs[first])
    run_id = summary(jobs[second])["wandb_run_id"]

    # status of the half-done sweep: one completed, one whose process is gone, one not started
    shown = run_cli(str(sweep), cwd=tmp_path, module="resnet_exp.status", env={"COLUMNS": "250"})
    assert shown.returncode == 1, shown.stdout + shown.stderr
    assert "1 completed, 1 lost, 1 pending" in shown.stdout
    # what the same command would do, per job
    dry = run_cli(*args, "--cfg", "job", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr[-2000:]
    plans = [line for line in dry.stdout.splitlines() if ": would be " in line]
    assert sorted(p.rsplit(": would be ", 1)[1].split()[0] for p in plans) == [
        "resumed", "skipped", "started",
    ]  # fmt: skip

    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    jobs = jobs_by_seed(sweep)
    assert sorted(jobs) == [1, 2, 3]
    assert snapshot(jobs[first]) == finished_before  # not retrained, not even rewritten
    assert summary(jobs[second])["attempts"] == 2
    assert summary(jobs[second])["resumed_from"]["epoch"] >= 1
    for seed, job in jobs.items():
        assert summary(job)["status"] == "completed"
        assert untimed_rows(job) == expected[seed], seed  # the uninterrupted sweep's numbers
    # the resumed job kept its W&B run: one id, one history row per step across both attempts
    attempts = read_offline_runs(jobs[second], include_internal=True)
    assert {a["run_id"] for a in attempts if a["history"]} == {run_id}
    steps = sorted({row["step"] for row in untimed_rows(jobs[second])})
    assert [r["_step"] for a in attempts for r in a["history"]] == steps
    shown = run_cli(str(sweep), cwd=tmp_path, module="resnet_exp.status", env={"COLUMNS": "250"})
    assert shown.returncode == 0 and "3 jobs: 3 completed" in shown.stdout

    # reordered and extended: only seed 4 trains; the report covers all four jobs
    before = {seed: snapshot(job) for seed, job in jobs.items()}
    more = run_cli(*tiny(fmnist_root, sweep, "4,3,2,1"), cwd=tmp_path)
    assert more.returncode == 0, more.stderr[-3000:]
    jobs = jobs_by_seed(sweep)
    assert {seed: snapshot(jobs[seed]) for seed in before} == before
    assert summary(jobs[4])["status"] == "completed" and summary(jobs[4])["attempts"] == 1
    assert (more.stdout + more.stderr).count("skipped, its record is kept") == 3
    csv_text = (sweep / "summary.csv").read_text()
    assert all(f"seed={seed}" in csv_text for seed in (1, 2, 3, 4))


@pytest.mark.slow
def test_two_sweeps_started_in_the_same_second_get_their_own_folders(
    tmp_path: Path, fmnist_root: Path
) -> None:
    """Both use joblib workers, which must write into the folder their parent claimed."""
    args = [
        "--multirun", "seed=1,2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
        f"data.root={fmnist_root}", "data.train_subset=32", "data.val_size=0",
        "data.test_subset=32", "data.batch_size=16", "model/depth=8", "trainer.epochs=1",
        "trainer.progress=false",
        "logger=none", "hydra.sweep.dir=sweeps/same-${now:%Y-%m-%d}",
    ]  # fmt: skip
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "resnet_exp", *args],
            cwd=tmp_path,
            env=env_for(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for run in runs:
        _, err = run.communicate(timeout=900)
        assert run.returncode == 0, err[-3000:]
    day = time.strftime("%Y-%m-%d")
    folders = sorted(p.name for p in (tmp_path / "sweeps").iterdir())
    assert folders == [f"same-{day}", f"same-{day}-2"]
    for name in folders:
        sweep = tmp_path / "sweeps" / name
        assert sorted(jobs_by_seed(sweep)) == [1, 2]  # each sweep holds exactly its own two jobs
        assert all(summary(job)["status"] == "completed" for job in jobs_by_seed(sweep).values())
        assert (sweep / "multirun.yaml").is_file()
