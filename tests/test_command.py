"""The command line as the entry point reads it once, and the one rule that names a job."""

from __future__ import annotations

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
