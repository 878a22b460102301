"""The Optuna sweeper's pruner: the sweep reports each epoch a trial ends and leaves a marker in
the job's folder when the pruner gives up on it; the job stops within ``finite_check_steps`` steps
and records ``pruned``; the study counts the trial pruned, never its best."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import torch
from test_best_and_resume import FakeData, SnapshotLogger

optuna = pytest.importorskip("optuna")

from hydra_plugins.resnet_exp_launcher._optuna import Driver, GridSampler, Item, Plan  # noqa: E402
from hydra_plugins.resnet_exp_launcher._pruning import Pruning  # noqa: E402
from resnet_exp.tracking.record import PRUNED, RunRecord, RunSummary  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: torch on 1 thread


class MarkedData(FakeData):
    """FakeData whose step ``at`` (global, 0-based) finds the pruner's marker in ``folder``."""

    def __init__(self, folder: Path, at: int) -> None:
        super().__init__()
        self.marker, self.at, self.served = RunRecord(folder).prune_marker, at, 0

    def train_batches(self, epoch: int, start_step: int = 0):
        for batch in self.batches[start_step:]:
            if self.served == self.at:
                self.marker.write_text("pruned after epoch 1 (a test)")
            self.served += 1
            yield batch


def _trainer(folder: Path, data: FakeData, epochs: int = 3, every: int = 1):
    from hydra.utils import instantiate

    from resnet_exp.hydra_glue.compose import compose
    from resnet_exp.training.loop import LoopSettings, Trainer
    from resnet_exp.training.schedules import constant

    torch.manual_seed(0)
    model = instantiate(compose(["model.depth=8"]).model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    settings = LoopSettings(epochs=epochs, progress=False, finite_check_steps=every)
    return Trainer(model, data, optimizer, constant(optimizer, total_steps=3 * epochs),
                   torch.device("cpu"), RunRecord(folder), SnapshotLogger(model), settings,
                   parts=model.parts())  # fmt: skip


@pytest.mark.parametrize("at", [3, 4, 5])  # the first step of epoch 2, its middle, its last
def test_the_marker_stops_training_at_the_next_step_and_keeps_the_epochs_done(
    tmp_path: Path, at: int
) -> None:
    trainer = _trainer(tmp_path, MarkedData(tmp_path, at))
    result = trainer.fit()
    assert result.status == PRUNED
    assert [row["epoch"] for row in result.rows] == [1]  # the cut epoch is not a row
    assert (trainer.epoch, trainer.step) == (1, at + 1)  # the step that found it was the last
    saved = torch.load(RunRecord(tmp_path).last_checkpoint, weights_only=False)
    assert (saved["epoch"], saved["step"]) == (1, 3)  # where the same job, run again, goes on


def test_the_marker_is_looked_for_every_finite_check_steps(tmp_path: Path) -> None:
    """Not a stat per step (a network filesystem's round trip): found at the next multiple."""
    trainer = _trainer(tmp_path, MarkedData(tmp_path, 4), every=4)  # there from step 5 on
    assert trainer.fit().status == PRUNED
    assert (trainer.epoch, trainer.step) == (2, 8)


def test_no_marker_trains_every_epoch(tmp_path: Path) -> None:
    assert _trainer(tmp_path, FakeData()).fit().status == "completed"


def _study(pruner) -> tuple:
    study = optuna.create_study(pruner=pruner)
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    plan = Plan(study, [], [], {})
    return study, Item(plan, "trial", [f"x={trial.params['x']}"], trial.number)


def _job_folder(sweep: Path, item: Item, values: list[float]) -> Path:
    """A trial's job folder as a running job leaves it: its record, and ``values`` as epochs."""
    folder = sweep / "job"
    folder.mkdir(parents=True)
    RunRecord(folder).write_summary(RunSummary(overrides=item.job))
    for epoch, value in enumerate(values, 1):
        RunRecord(folder).append_metrics({"epoch": epoch, "val/err": value, "test/err": 50.0})
    return folder


def test_each_epoch_is_reported_as_the_objective_so_far_and_a_pruned_job_is_told_pruned(
    tmp_path: Path,
) -> None:
    """Reported: the least validation error so far (the job's own result), from epoch 1; the
    pruner's verdict becomes the marker; the trial is pruned once the job records it."""
    study, item = _study(optuna.pruners.ThresholdPruner(upper=30.0))
    folder = _job_folder(tmp_path, item, [40.0, 20.0, 35.0])  # epoch 1: above the threshold
    with Pruning(item, tmp_path, None):
        deadline = time.monotonic() + 30
        while not RunRecord(folder).prune_marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        RunRecord(folder).write_summary(RunSummary(status=PRUNED, overrides=item.job))
    assert item.pruned
    assert "pruned after epoch 1 (ThresholdPruner" in RunRecord(folder).prune_marker.read_text()
    frozen = study.trials[item.trial]
    assert frozen.intermediate_values == {1: 40.0}  # nothing after the pruner's verdict


def test_the_objective_so_far_is_the_least_and_a_job_that_ends_is_not_pruned(
    tmp_path: Path,
) -> None:
    study, item = _study(optuna.pruners.ThresholdPruner(upper=100.0))  # never prunes
    folder = _job_folder(tmp_path, item, [40.0, 20.0, 35.0])
    with Pruning(item, tmp_path, None):
        deadline = time.monotonic() + 30
        while len(study.trials[item.trial].intermediate_values) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        RunRecord(folder).write_summary(RunSummary(status="completed", overrides=item.job))
    assert study.trials[item.trial].intermediate_values == {1: 40.0, 2: 20.0, 3: 20.0}
    assert not item.pruned and not RunRecord(folder).prune_marker.exists()


def test_a_pruned_trial_is_never_the_studys_best() -> None:
    """The driver tells a pruned trial PRUNED (Optuna keeps its last reported value), so the
    replicates run at the best completed trial, even where the pruned one reported less."""
    study = optuna.create_study()
    x = optuna.distributions.CategoricalDistribution([1, 2])
    ran: list[list[str]] = []

    class Watch:
        def __init__(self, item: Item) -> None:
            self.item = item

        def __enter__(self) -> None:
            if self.item.job == ["x=1"]:
                trial = optuna.trial.Trial(study, study.trials[self.item.trial]._trial_id)
                trial.report(0.5, 1)  # better than x=2's final value, then pruned
                self.item.pruned = True

        def __exit__(self, *exc: object) -> None:
            pass

    def launch(job: list[str], number: int) -> tuple[float, str]:
        ran.append(job)
        return (9.0 if job == ["x=1"] else 3.0), ""

    plan = Plan(study, [], [["seed=0"]], {})
    study.sampler = GridSampler({"x": [1, 2]}, seed=0)
    lock = threading.Lock()
    Driver([plan], {"x": x}, 2, 1, launch, "me", ask_lock=lock, watch=Watch).run()
    states = {t.params["x"]: t.state.name for t in study.trials}
    assert states == {1: "PRUNED", 2: "COMPLETE"}
    assert study.trials[0 if study.trials[0].params["x"] == 1 else 1].value == 0.5
    assert ran[-1] == ["x=2", "seed=0"]  # the replicate at the best completed trial


@pytest.mark.parametrize(
    "bad, named",
    [("hydra.sweeper.pruner={_target_:optuna.pruners.Nope}", "optuna.pruners.Nope"),
     ("hydra.sweeper.pruner.n_warmup_steps=-1", "n_warmup_steps")],
)  # fmt: skip
def test_a_pruner_optuna_cannot_make_is_refused_before_anything_runs(bad: str, named: str) -> None:
    from resnet_exp.hydra_glue.command import parse_command
    from resnet_exp.hydra_glue.preflight import CommandError, check_command

    base = ["-m", "hydra/sweeper=optuna", "hydra/sweeper/pruner=median", "logger=none",
            "optimizer.lr=interval(0.01,0.1)"]  # fmt: skip
    with pytest.raises(CommandError, match=named) as found:
        check_command(parse_command([*base, bad]))
    message = str(found.value)
    assert "hydra/sweeper/pruner=hyperband|median|none|successive_halving" in message
    assert "\n" not in message
    check_command(parse_command([*base, "hydra.sweeper.pruner.n_warmup_steps=0"]))  # the tie
    check_command(parse_command([*base, "hydra/sweeper/pruner=none"]))


@pytest.mark.slow  # a sweep of CLI processes
def test_cli_sweep_prunes_every_trial_the_pruner_gives_up_on(tmp_path: Path) -> None:
    """A threshold no trial meets: each job stops soon after its first epoch, records
    ``pruned`` and why; the study has no best (no replicates), status exits 0 and says why, and
    the job run again outside the study would go on from its checkpoint."""
    from resnet_exp.tracking.identity import identity_of_folder
    from resnet_exp.training.job_plan import RESUME, plan_job
    from tests.cli import run_cli
    from tests.tiny_run import BASE, fake_fashionmnist

    root, sweep = fake_fashionmnist(tmp_path / "data"), tmp_path / "sweep"
    args = ["-m", *BASE, f"data.root={root}", "trainer.epochs=300", "hydra/sweeper=optuna",
            "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_trials=3",
            "hydra.sweeper.seed=0", "optimizer.lr=tag(log,interval(0.001,0.1))",
            "hydra.sweeper.replicates=[seed]", "seed=0,1",
            "hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,upper:0.0}",
            f"hydra.sweep.dir={sweep}"]  # fmt: skip
    done = run_cli(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    folders = sorted(p.parent for p in sweep.glob("*/summary.json"))
    assert len(folders) == 3  # the trials only: no completed trial, no replicates
    for folder in folders:
        summary = RunRecord(folder).read_summary()
        assert summary.status == PRUNED and 1 <= summary.epochs < 300
        assert summary.stopped_by.startswith("pruned after epoch") and "ThresholdPruner" in (
            summary.stopped_by
        )
        plan = plan_job(folder, identity_of_folder(folder))
        assert plan.action == RESUME, plan  # run again, it goes on
    tuned = json.loads((sweep / "tuned.json").read_text())
    assert {t["state"] for t in tuned["studies"][0]["trials"]} == {"PRUNED"}
    assert "| resnet_exp | - | - | 0 (+3 pruned) |" in done.stdout
    status = run_cli(str(sweep), cwd=tmp_path, module="resnet_exp.status")
    assert status.returncode == 0 and "3 jobs: 3 pruned" in status.stdout, status.stdout
    assert "pruned after epoch" in status.stdout
