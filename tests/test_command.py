"""The command line as the entry point reads it once, and the one rule that names a job."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli import run_cli

from resnet_exp.hydra_glue.command import parse_command
from resnet_exp.tracking.names import config_label, run_name, shared_by_configurations


def test_a_preset_that_sweeps_is_a_sweep_whose_jobs_merge_its_params_with_the_command_line() -> (
    None
):
    command = parse_command(["experiment=degradation_quick", "seed=3,4"])
    assert command.multirun and command.launches
    jobs = command.jobs()
    assert len(jobs) == 2 * 2 * 2  # block x depth from the preset, the command line's seeds
    assert {o for job in jobs for o in job if o.startswith("seed=")} == {"seed=3", "seed=4"}
    assert all("model/block=plain" in job or "model/block=basic" in job for job in jobs)


def test_a_flag_or_hydra_mode_makes_a_sweep_and_nothing_else_does() -> None:
    assert parse_command(["-m", "seed=1,2"]).jobs() == [["seed=1"], ["seed=2"]]
    assert parse_command(["hydra.mode=MULTIRUN", "seed=1,2"]).multirun
    single = parse_command(["seed=1", "hydra.run.dir='my runs/a'"])
    assert not single.multirun and single.jobs() == [["seed=1", "hydra.run.dir='my runs/a'"]]
    assert single.run_dir == "my runs/a" == single.new_run_dir  # Hydra's quoting removed


def test_flags_and_their_values_are_not_overrides() -> None:
    command = parse_command(["-m", "--cfg", "hydra", "--resolve", "seed=1,2", "--info", "config"])
    assert command.cfg == "hydra" and command.resolve
    assert command.overrides == ("seed=1,2",)
    assert not command.launches and command.new_run_dir is None


def test_an_unparseable_override_is_recorded_not_raised() -> None:
    command = parse_command(["seed=[1"])
    assert command.parse_error is not None and "seed=[1" in command.parse_error


def test_a_pattern_or_sweep_is_no_explicit_folder_and_a_claimed_one_is_appended() -> None:
    assert parse_command(["-m", "hydra.sweep.dir=out/${now:%H}"]).sweep_dir is None
    named = parse_command(["-m", "hydra.sweep.dir=out/a", "hydra.sweep.dir=out/b"])
    assert named.sweep_dir == "out/b"  # the last one wins, as in Hydra
    claimed = parse_command(["-m", "seed=1,2"]).with_sweep_dir("out/my sweep")
    assert (
        claimed.args[-1] == "hydra.sweep.dir='out/my sweep'" and claimed.sweep_dir == "out/my sweep"
    )


def test_a_jobs_name_leaves_out_where_its_data_lies_and_what_every_job_shares() -> None:
    job = ["model/depth=14", "seed=1", "data.root=/home/me/data", "data.train_subset=1500",
           "logger.mode=offline"]  # fmt: skip
    shared = {"data.root=/home/me/data", "data.train_subset=1500", "logger.mode=offline"}
    assert run_name(job, shared) == "model/depth=14,seed=1"
    assert run_name(job) == "model/depth=14,seed=1,data.train_subset=1500"  # a single run
    assert config_label(job) == "model/depth=14,data.train_subset=1500"


def test_a_configurations_label_is_what_sets_it_apart_from_the_sweeps_other_configurations() -> (
    None
):
    root, subset = "data.root=/home/me/data", "data.train_subset=1500"
    jobs = [[f"model/depth={d}", f"seed={s}", root, subset] for d in (14, 20) for s in (1, 2)]
    shared = shared_by_configurations(jobs)
    assert shared == {subset}  # the seeds are replicates, the folder is no configuration
    assert [config_label(job, shared) for job in jobs[::2]] == [
        "model/depth=14",
        "model/depth=20",
    ]
    replicates = [job for job in jobs if "model/depth=14" in job]
    alone = shared_by_configurations(replicates)  # one configuration: nothing to tell apart
    assert config_label(replicates[0], alone) == "model/depth=14,data.train_subset=1500"


# -- issue 31, class 14: Hydra's whole override grammar ------------------------------------------

#: (arguments, what the output holds: each job's header or the refusal's words); exit 0 or 2
GRAMMAR = [
    (["-m", "model/block=glob(pl*)"], ["model/block=plain", "model/block=plain_bottleneck"], 0),
    (["-m", "model/block=glob(*,exclude=[pl*,pre*])"], ["block=basic", "block=bottleneck"], 0),
    (["-m", "seed=range(0,4,step=2)"], ["# job 1: seed=2"], 0),
    (["-m", "seed=choice(3,4)"], ["# job 0: seed=3", "# job 1: seed=4"], 0),
    (["-m", "seed=shuffle(range(0,2))", "optimizer.lr=0.05"], ["# job 1: seed="], 0),
    (["++trainer.epochs=2"], ["epochs: 2"], 0),
    (["-m", "model/block=glob(nothing*)"], ["has no job", "glob(nothing*)"], 2),
    (["-m", "seed=range(3,3)"], ["has no job", "range(3,3)"], 2),
    (["-m", "optimizer.lr=interval(0.1,0.2)"], ["interval(0.1,0.2)", "sampling sweeper"], 2),
    (["~model"], ["model has no value"], 2),
    (["~model/block"], ["model.block has no value"], 2),
    (["~seed"], ["seed has no value"], 2),
    (["~trainer.epochs"], ["~trainer.epochs", "does not support deletion"], 2),
    (["+trainer.epochs=2"], ["trainer.epochs", "++trainer.epochs=2"], 2),
    (["trainer.epochs=null"], ["trainer.epochs", "not Optional"], 2),
    (["data=null"], ["cannot be set to null"], 2),
    (["seed=0,1"], ["seed=0,1", "--multirun"], 2),
]


@pytest.mark.slow
@pytest.mark.parametrize(("args", "shown", "code"), GRAMMAR)
def test_every_override_form_works_as_hydra_documents_it_or_is_one_paragraph(
    tmp_path: Path, args: list[str], shown: list[str], code: int
) -> None:
    done = run_cli(*args, "--cfg", "job", cwd=tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode == code and all(s in out for s in shown), out
    assert "Traceback" not in out and not (tmp_path / "outputs").exists()
    if code:
        assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
