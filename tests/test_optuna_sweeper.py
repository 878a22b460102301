"""The Optuna sweeper's driver against a fake objective: optimum, no batch barrier, kill and
resume, a journal shared by two processes; the tuned preset's shape."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from hydra_plugins.resnet_exp_launcher._optuna import (  # noqa: E402
    OWNER,
    Driver,
    GridSampler,
    Plan,
    read_space,
    storage_for,
)

ROOT = Path(__file__).resolve().parents[1]

# A sweep process on a journal: each job sleeps, appends its overrides to `ran`, returns (x-2)^2.
FAKE_SWEEP = """
import sys, time, optuna
from pathlib import Path
from hydra_plugins.resnet_exp_launcher._optuna import Driver, Plan, read_space, storage_for
journal, owner, n_trials, ran = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
space = read_space(["x=interval(-5,5)"], [], [])
storage, lock = storage_for(str(journal), journal.parent)
study = optuna.create_study(study_name="s", storage=storage,
                            load_if_exists=True)
study.sampler = optuna.samplers.RandomSampler(seed=len(owner) + len(study.trials))
def launch(job, number):
    x = float(job[0].split("=")[1])
    time.sleep(0.4)
    with ran.open("a") as f:
        f.write(job[0] + "\\n")
    return (x - 2) ** 2, job[0]
Driver([Plan(study, [], [], {})], space.search, n_trials, 2, launch, owner, ask_lock=lock).run()
"""


def _plan(study, fixed=(), replicates=(), baseline=None) -> Plan:
    return Plan(study, list(fixed), [list(r) for r in replicates], dict(baseline or {}))


def _x(job: list[str]) -> float:
    return float(next(o for o in job if o.startswith("x=")).split("=")[1])


def test_finds_a_known_optimum() -> None:
    space = read_space(["x=interval(-5,5)"], [], [])
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    Driver([_plan(study)], space.search, 40, 1, lambda job, n: ((_x(job) - 2) ** 2, ""), "me").run()
    assert study.best_params["x"] == pytest.approx(2, abs=0.5)


def test_slots_never_wait_on_a_batch() -> None:
    """Jobs of very different lengths on 2 slots: each slot asks its next trial when its own
    job ends, however long the other slot's runs (a batch barrier would idle it)."""
    space = read_space(["x=interval(-5,5)"], [], [])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))

    def launch(job: list[str], number: int) -> tuple[float, str]:
        time.sleep(0.6 if number % 3 == 0 else 0.1)
        return _x(job) ** 2, ""

    timeline = Driver([_plan(study)], space.search, 12, 2, launch, "me").run()
    assert len(timeline) == 12 and len(study.trials) == 12
    last_start = max(r["start"] for r in timeline)
    for slot in (0, 1):
        rows = sorted((r for r in timeline if r["slot"] == slot), key=lambda r: r["start"])
        gaps = [b["start"] - a["end"] for a, b in zip(rows, rows[1:])]
        assert rows and max(gaps, default=0) < 0.05, gaps
        assert rows[-1]["end"] >= last_start  # no slot ended early while trials remained
    # at every job's start the other slot was busy too (until the last trial was asked)
    for row in timeline:
        if row["start"] < last_start:
            busy = [r for r in timeline if r["start"] <= row["start"] + 0.05 < r["end"]]
            assert len(busy) == 2


def test_follow_ups_run_at_each_studys_best_and_baseline() -> None:
    space = read_space(["g=a,b", "seed=0,1,2", "x=choice(1,2,3)"], ["g"], ["seed"])
    assert space.combos == [["g=a"], ["g=b"]] and space.replicates[0] == ["seed=0"]
    ran: list[list[str]] = []

    def launch(job: list[str], number: int) -> tuple[float, str]:
        ran.append(job)
        best = 2 if "g=a" in job else 3
        return abs(_x(job) - best), ",".join(sorted(job))

    grid = GridSampler({"x": [1, 2, 3]})
    plans = [_plan(optuna.create_study(sampler=grid), [*c, "seed=0"], space.replicates, {"x": 1})
             for c in space.combos]  # fmt: skip
    Driver(plans, space.search, 3, 2, launch, "me").run()
    assert [p.study.best_params for p in plans] == [{"x": 2}, {"x": 3}]
    assert plans[0].tuned == ["g=a,seed=0,x=2", "g=a,seed=1,x=2", "g=a,seed=2,x=2"]
    assert plans[1].at_baseline == ["g=b,seed=0,x=1", "g=b,seed=1,x=1", "g=b,seed=2,x=1"]
    assert len(ran) == 2 * 3 + 2 * 6


def _start(journal: Path, owner: str, n_trials: int, ran: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", FAKE_SWEEP, str(journal), owner, str(n_trials), str(ran)]
    return subprocess.Popen(args, env=env, cwd=ROOT)


def _trials(journal: Path) -> list:
    try:
        storage = storage_for(str(journal), journal.parent)[0]
        return optuna.load_study(study_name="s", storage=storage).trials
    except KeyError:  # not created yet
        return []


@pytest.mark.slow  # starts processes
def test_kill_and_resume_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    journal, ran = tmp_path / "optuna.journal", tmp_path / "ran.txt"
    first = _start(journal, "sweepA", 8, ran)
    deadline = time.time() + 60
    while time.time() < deadline and sum(t.state.name == "COMPLETE" for t in _trials(journal)) < 3:
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = _trials(journal)
    done_before = {t.params["x"] for t in before if t.state.name == "COMPLETE"}
    left_running = {t.number for t in before if t.state.name == "RUNNING"}
    assert len(done_before) >= 3 and left_running  # killed with trials in flight
    assert _start(journal, "sweepA", 8, ran).wait(timeout=60) == 0
    after = [t for t in _trials(journal) if t.params]  # one killed while asked has none
    assert len(after) == 8 and all(t.state.name == "COMPLETE" for t in after)
    lines = ran.read_text().splitlines()
    for t in after:  # a finished trial ran once; one killed mid-run ran again under its number
        times = lines.count(f"x={t.params['x']}")
        assert times == 1 or (t.number in left_running and times <= 2), (t.number, times)
    assert not done_before - {float(line.split("=")[1]) for line in lines}


@pytest.mark.slow  # starts processes
def test_two_processes_share_one_journal(tmp_path: Path) -> None:
    journal, ran = tmp_path / "optuna.journal", tmp_path / "ran.txt"
    procs = [_start(journal, owner, 10, ran) for owner in ("sweepA", "sweepBB")]
    assert [p.wait(timeout=90) for p in procs] == [0, 0]
    trials = _trials(journal)
    assert len(trials) == 10 and all(t.state.name == "COMPLETE" for t in trials)
    assert {t.user_attrs[OWNER] for t in trials} == {"sweepA", "sweepBB"}
    assert len(ran.read_text().splitlines()) == 10


def test_tuned_preset_shape() -> None:
    from omegaconf import OmegaConf

    from resnet_exp.hydra_glue.compose import compose

    hydra = compose(["experiment=degradation_quick_tuned"], return_hydra_config=True).hydra
    sweeper = hydra.sweeper
    assert sweeper._target_.endswith("_optuna.OptunaSweeper") and str(hydra.mode).endswith(
        "MULTIRUN"
    )
    params = OmegaConf.to_container(sweeper.params, resolve=True)
    space = read_space([f"{k}={v}" for k, v in params.items()], sweeper.each, sweeper.replicates)
    assert sorted(map(sorted, space.combos)) == sorted(
        sorted([f"model/depth={d}", f"model/block={b}"])
        for d in (56, 20)
        for b in ("plain", "basic")
    )
    assert [r[0] for r in space.replicates] == [f"seed={s}" for s in range(5)]
    assert list(space.search) == ["optimizer.lr"] and sweeper.sampler == "grid"
    assert OmegaConf.to_container(sweeper.baseline, resolve=True) == {"optimizer.lr": 0.019}
    assert 0.019 in space.search["optimizer.lr"].choices
    assert sweeper.n_trials == len(space.search["optimizer.lr"].choices)


def test_storage_is_a_journal_in_the_sweep_folder_or_a_url(tmp_path: Path) -> None:
    assert storage_for("sqlite:///x.db", tmp_path)[0] == "sqlite:///x.db"
    optuna.create_study(study_name="s", storage=storage_for(None, tmp_path)[0])
    assert (tmp_path / "optuna.journal").is_file()
    assert json.loads((tmp_path / "optuna.journal").read_text().splitlines()[0])


def _run(name: str, residual: bool, depth: int, seed: int, train_err: float):
    from resnet_exp.report.aggregate import RunResult

    block = "basic" if residual else "plain"
    return RunResult(job_dir=Path(name), name=name, job=name, status="completed", block=block,
                     residual=residual, depth=depth, seed=seed, final_train_err=train_err,
                     best_val_err=train_err, epochs=7, config=f"{block}-{depth}")  # fmt: skip


def test_report_tuned_section_from_fixture_numbers(tmp_path: Path) -> None:
    """Plain 56 trains worse than plain 20 at the shared lr and at its own best lr: the
    degradation survives tuning; the section names each best lr and writes the search curve."""
    from resnet_exp.report.console import end_lines
    from resnet_exp.report.tuned import TUNED_PNG, tuned_section

    runs, studies = [], []
    for residual, depth, best_lr, tuned_err, shared_err in (
        (False, 56, 0.0095, 40.0, 50.0), (False, 20, 0.038, 10.0, 12.0),
        (True, 56, 0.038, 8.0, 9.0), (True, 20, 0.038, 9.0, 10.0),
    ):  # fmt: skip
        tag = f"{'basic' if residual else 'plain'}{depth}"
        tuned = [f"/sweep/{tag}-t{s}" for s in range(3)]
        shared = [f"/sweep/{tag}-s{s}" for s in range(3)]
        runs += [_run(Path(j).name, residual, depth, s, tuned_err + s) for s, j in enumerate(tuned)]
        runs += [
            _run(Path(j).name, residual, depth, s, shared_err + s) for s, j in enumerate(shared)
        ]
        trials = [{"number": i, "params": {"optimizer.lr": lr}, "state": "COMPLETE",
                   "value": tuned_err + (0 if lr == best_lr else 5)}
                  for i, lr in enumerate((0.0095, 0.019, 0.038))]  # fmt: skip
        studies.append({"study": f"resnet_exp,{tag}", "fixed": [], "trials": trials,
                        "tuned_jobs": tuned, "baseline_jobs": shared})  # fmt: skip
    (tmp_path / "tuned.json").write_text(json.dumps({"studies": studies}))
    text = "\n".join(tuned_section(runs, tmp_path))
    assert (
        "| plain-56 | optimizer.lr=0.0095 | 40 | 3 |" in text
        and "| basic-20 | optimizer.lr=0.038 | 9 | 3 |" in text
    )
    assert "At the tuned lrs (12 runs): **Degradation reproduced" in text
    assert "At the shared lr (12 runs): **Degradation reproduced" in text
    assert "**The degradation survives tuning** (deeper plain nets: +30.00 pp" in text
    assert (tmp_path / TUNED_PNG).stat().st_size > 1000
    assert tuned_section(runs, tmp_path / "elsewhere") == []
    end = "\n".join(end_lines(runs, tmp_path / "report.md"))  # what the sweep prints last
    assert "Tuned by Optuna:" in end and "| plain-56 | optimizer.lr=0.0095 | 40 | 3 |" in end
    assert "At the shared lr (12 runs): Degradation reproduced" in end
    assert "The degradation survives tuning" in end and "No verdict" not in end


def _cli_sweep(tmp_path: Path) -> list[str]:
    from tests.tiny_run import BASE, fake_fashionmnist

    root = fake_fashionmnist(tmp_path / "data")
    return ["-m", *BASE, f"data.root={root}", "trainer.epochs=3", "hydra/sweeper=optuna",
            "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_trials=4",
            "hydra.sweeper.seed=0", "optimizer.lr=tag(log,interval(0.001,0.1))",
            f"hydra.sweep.dir={tmp_path / 'sweep'}"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_cli_sweep_killed_and_resumed_runs_every_trial_once(tmp_path: Path, signum) -> None:
    """Kill or stop the sweep once a trial finished (SIGTERM: it ends, exit 143, its jobs in
    flight stopping at a step); the same command completes the study: 4 trials, each in its own
    folder, none finished before the kill trained again."""
    from resnet_exp.tracking.record import RunRecord
    from tests.cli import run_cli, start_cli

    args, sweep = _cli_sweep(tmp_path), tmp_path / "sweep"
    proc = start_cli(*args, cwd=tmp_path)
    deadline = time.time() + 300
    while time.time() < deadline and not _timeline(sweep):
        time.sleep(0.2)
    proc.send_signal(signum)
    proc.communicate(timeout=120)
    assert proc.returncode == (-9 if signum == signal.SIGKILL else 143)
    finished = {r["job"][-1] for r in _timeline(sweep)}
    midway = run_cli(str(sweep), cwd=tmp_path, module="resnet_exp.status")
    assert midway.returncode == 1 and "/4 told" in midway.stdout  # the rest: pending
    done = run_cli(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    trials = _trials_of(sweep)
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state.name == "COMPLETE" for t in trials)
    rows = _timeline(sweep)  # the restarted sweep's jobs
    assert len({r["trial"] for r in rows} | {t.number for t in trials if t.params}) == 4
    assert not {r["job"][-1] for r in rows} & finished  # none of the finished ones again
    folders = [p for p in sweep.iterdir() if (p / "summary.json").is_file()]
    assert len(folders) == 4
    status = run_cli(str(sweep), cwd=tmp_path, module="resnet_exp.status")
    assert status.returncode == 0 and "4 jobs: 4 completed" in status.stdout, status.stdout
    assert "pending" not in status.stdout  # a search lists no planned job (the range's ends)
    assert all(RunRecord(p).read_summary().status == "completed" for p in folders)


def _timeline(sweep: Path) -> list[dict]:
    try:
        return json.loads((sweep / "tuned.json").read_text())["timeline"]
    except (OSError, ValueError):
        return []


def _trials_of(sweep: Path) -> list:
    storage = storage_for(None, sweep)[0]
    (name,) = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage).trials


@pytest.mark.slow
def test_cli_without_optuna_is_one_paragraph_and_exit_2(tmp_path: Path) -> None:
    from tests.cli import run_cli

    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "optuna.py").write_text("raise ImportError('hidden')\n")
    (hide / "sitecustomize.py").write_text(
        "import importlib.util as u\n_f = u.find_spec\n"
        "u.find_spec = lambda n, *a: None if n == 'optuna' else _f(n, *a)\n"
    )
    done = run_cli(*_cli_sweep(tmp_path), cwd=tmp_path, env={"PYTHONPATH": f"{hide}:{ROOT}"})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert 'pip install ".[tune]"' in done.stderr and done.stderr.count("\n") == 1


def test_preflight_checks_a_search_range_at_its_ends() -> None:
    """A range whose low end is a bad lr is refused before anything runs; a good one passes."""
    from resnet_exp.hydra_glue.command import interval_ends, parse_command
    from resnet_exp.hydra_glue.preflight import CommandError, check_command

    assert interval_ends("optimizer.lr=tag(log,interval(0.001,1))") == "optimizer.lr=0.001,1.0"
    assert interval_ends("trainer.epochs=tag(int,interval(1,4))") == "trainer.epochs=1,4"
    base = ["-m", "hydra/sweeper=optuna", "logger=none"]
    check_command(parse_command([*base, "optimizer.lr=tag(log,interval(0.001,0.1))"]))
    with pytest.raises(CommandError, match="lr"):
        check_command(parse_command([*base, "optimizer.lr=interval(-1,0.1)"]))


@pytest.mark.slow
def test_slurm_slots_keep_two_trials_in_flight(tmp_path: Path, fmnist_root: Path) -> None:
    """On the CI cluster (2 CPUs): 2 slots, 4 trials as one-job SLURM arrays submitted side by
    side; each trial's SLURM id recorded once, every trial complete, the slots overlapping."""
    from test_scale import TINY, slurm_up

    from resnet_exp import slurm_queue
    from tests.cli import run_cli

    if reason := slurm_up():
        pytest.skip(reason)
    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=10", "logger=none", *TINY,
            f"data.root={fmnist_root}", "hydra/sweeper=optuna", "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.n_trials=4", "optimizer.lr=choice(0.01,0.02,0.05,0.1)",
            "hydra.sweeper.sampler=grid", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    done = run_cli(*args, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = _trials_of(sweep)
    assert len(trials) == 4 and all(t.state.name == "COMPLETE" for t in trials)
    assert len(slurm_queue.read_entries(sweep)) == 4  # one SLURM job per trial, none lost
    rows = sorted(_timeline(sweep), key=lambda r: r["start"])
    assert {r["slot"] for r in rows} == {0, 1}
    assert rows[1]["start"] < rows[0]["end"]  # the second slot did not wait for the first


@pytest.mark.parametrize(
    "bad, named",
    [("hydra.sweeper.sampler=tpe2", "tpe, random, grid"),
     ("hydra.sweeper.direction=up", "maximize"),
     ("hydra.sweeper.n_trials=0", "1 or more"), ("hydra.sweeper.n_trials=-1", "1 or more"),
     ("hydra.sweeper.each=[model/depth]", "model/depth, which the command does not set"),
     ("hydra.sweeper.replicates=[seed]", "seed, which the command does not set")],
)  # fmt: skip
def test_a_bad_sweeper_option_is_refused_before_anything_runs(bad: str, named: str) -> None:
    """Options Optuna would reject only once the sweep ran (a traceback), or a study of no
    trial (which ran nothing and exited 0): one paragraph naming the value and the choices."""
    from resnet_exp.hydra_glue.command import parse_command
    from resnet_exp.hydra_glue.preflight import CommandError, check_command

    base = ["-m", "hydra/sweeper=optuna", "logger=none", "optimizer.lr=interval(0.01,0.1)"]
    with pytest.raises(CommandError, match=named) as found:
        check_command(parse_command([*base, bad]))
    assert bad.split("=")[0] in str(found.value)
    check_command(parse_command([*base, "hydra.sweeper.n_trials=1"]))  # the tie: 1 trial runs
    check_command(parse_command([*base, "hydra.sweeper.each=[model/depth]", "model/depth=20"]))
    check_command(parse_command(["experiment=degradation_quick_tuned"]))  # its keys: its params
