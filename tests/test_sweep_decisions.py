"""Each sweep feature's decisions as pure functions, at their boundaries and ties (issue 32 item 5):
fail-fast, GPU slots, launcher traits, thread shares, job identity and resume. No process is
started and nothing trains; the end-to-end runs of the same rules are the slow tests of
test_sweep_failures.py, test_gpu_slots.py, test_threads.py, test_identity.py and
test_sweep_resume.py."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from hydra_plugins.resnet_exp_launcher import _sweeper
from resnet_exp.errors import UserError
from resnet_exp.hydra_glue import gpu_slots, launchers
from resnet_exp.hydra_glue import sweep_failures as sf
from resnet_exp.hydra_glue.compose import compose
from resnet_exp.hydra_glue.gpu_slots import Slot, claim, plan, predicted, to_env
from resnet_exp.hydra_glue.internals import hydra_config_of
from resnet_exp.tracking import identity
from resnet_exp.tracking.folder_lock import try_flock
from resnet_exp.tracking.record import RunRecord, RunSummary
from resnet_exp.training import resume
from resnet_exp.training.job_plan import ForeignJobFolder, finished_in, plan_job
from resnet_exp.training.threads import decide

GIB = 2**30

# -- fail-fast ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hydra_configs() -> dict[bool, object]:
    """Hydra's runtime config of a sweep job with fail_fast on and off (composed once)."""
    return {on: compose([f"hydra.sweeper.fail_fast={str(on).lower()}"], return_hydra_config=True)
            for on in (True, False)}  # fmt: skip


@pytest.fixture
def job_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The job's log file as Hydra's job logging opens it: the root logger's one file handler."""
    path = tmp_path / "job.log"
    handler = logging.FileHandler(path)
    monkeypatch.setattr(logging.getLogger(), "handlers", [handler])
    yield path
    handler.close()


def raised(error: Exception) -> Exception:
    """``error`` as a job raises it (with a traceback)."""
    try:
        raise error
    except Exception as caught:
        return caught


def sweep_job(sweep: Path, name: str, multirun: bool = True) -> SimpleNamespace:
    """What sweep_failures reads of a job (hydra_glue.job.JobFacts' run_dir, sweep_dir, name)."""
    run_dir = sweep / name
    run_dir.mkdir(parents=True, exist_ok=True)
    return SimpleNamespace(run_dir=run_dir, sweep_dir=sweep if multirun else None, name=name)


def test_one_failure_under_fail_fast_stops_every_later_job_of_its_sweep_and_only_those(
    tmp_path: Path, hydra_configs: dict, job_log: Path, capsys: pytest.CaptureFixture
) -> None:
    sweep = tmp_path / "sweep"
    failing, later = sweep_job(sweep, "seed=1"), sweep_job(sweep, "seed=2")
    with hydra_config_of(hydra_configs[True]):
        assert sf.not_started_reason(later) is None  # no failure yet: it starts
        sf.job_failed(failing, raised(RuntimeError("boom\nsecond line")))
        # the marker lies in the sweep folder, where every later job looks, not in the job's own
        assert (sweep / sf.STOP_MARKER).read_text() == "seed=1\n"
        assert not (failing.run_dir / sf.STOP_MARKER).exists()
        reason = sf.not_started_reason(later)
        assert reason == f"not started: {sf.FAIL_FAST_SWITCH} and job seed=1 failed"
        other_sweep = sweep_job(tmp_path / "other", "seed=2")
        assert sf.not_started_reason(other_sweep) is None  # another sweep's failure stops nothing
        single = sweep_job(tmp_path / "single", "x", multirun=False)
        (single.run_dir / sf.STOP_MARKER).write_text("x\n")
        assert sf.not_started_reason(single) is None  # a single run is never "not started"
    [line] = capsys.readouterr().err.splitlines()  # the failure said once, on one line
    assert line == f"job failed: seed=1: RuntimeError: boom (log: {job_log})"
    logged = job_log.read_text()  # the traceback and the whole message: in the job's log only
    assert "Traceback (most recent call last)" in logged and "second line" in logged


def test_without_fail_fast_a_failure_leaves_no_marker_and_an_old_marker_stops_nothing(
    tmp_path: Path, hydra_configs: dict, job_log: Path, capsys: pytest.CaptureFixture
) -> None:
    sweep = tmp_path / "sweep"
    with hydra_config_of(hydra_configs[False]):
        sf.job_failed(sweep_job(sweep, "seed=1"), RuntimeError("boom"))
        assert not (sweep / sf.STOP_MARKER).exists()
        (sweep / sf.STOP_MARKER).write_text("seed=1\n")  # left by an earlier fail-fast launch
        assert sf.not_started_reason(sweep_job(sweep, "seed=2")) is None
    capsys.readouterr()


def test_a_marker_that_cannot_be_written_leaves_the_jobs_own_failure_as_the_error(
    tmp_path: Path, hydra_configs: dict, job_log: Path, capsys: pytest.CaptureFixture
) -> None:
    job = SimpleNamespace(run_dir=tmp_path / "job", sweep_dir=tmp_path / "gone" / "deeper",
                          name="seed=1")  # fmt: skip
    with hydra_config_of(hydra_configs[True]):
        sf.job_failed(job, RuntimeError("boom"))  # no exception of its own
    assert "could not write the fail-fast marker" in job_log.read_text()
    assert capsys.readouterr().err.startswith("job failed: seed=1: RuntimeError: boom")


def outcome_of(failed: int, not_started: int, jobs: int = 4) -> sf.SweepOutcome:
    outcome = sf.SweepOutcome("sw", jobs=jobs, fail_fast=True)
    outcome.failed += [sf.FailedJob(f"seed={i}", "E: x", "log") for i in range(failed)]
    outcome.not_started += [f"seed={9 - i}" for i in range(not_started)]
    return outcome


def test_the_outcome_table_counts_exactly_what_happened_in_singular_and_plural() -> None:
    one = sf.summary_text(outcome_of(1, 1), explicit_sweep_dir=True).splitlines()
    assert one[0] == "sweep sw: 1 of 4 jobs failed:" and len(one) == 4  # header, 1 row, 1 line
    assert one[3].startswith(f"1 job not started ({sf.FAIL_FAST_SWITCH} stopped")
    assert one[3].endswith("runs it and skips the completed ones.")
    two = sf.summary_text(outcome_of(2, 2), explicit_sweep_dir=True).splitlines()
    assert two[0] == "sweep sw: 2 of 4 jobs failed:" and len(two) == 5
    assert two[4].startswith("2 jobs not started") and "runs them and" in two[4]
    only_stopped = sf.summary_text(outcome_of(0, 1), explicit_sweep_dir=True)
    assert only_stopped.startswith("1 job not started")  # no table without a failure
    assert sf.summary_text(outcome_of(0, 0), explicit_sweep_dir=True) == ""


def test_the_sweep_ends_with_exit_1_exactly_when_a_job_failed_or_did_not_start(
    capsys: pytest.CaptureFixture,
) -> None:
    try:
        sf.record_outcome(None)  # no sweep ran (a single run)
        sf.finish(explicit=False)
        sf.record_outcome(outcome_of(0, 0))  # every job completed
        sf.finish(explicit=False)
        assert capsys.readouterr().err == ""
        for failed, stopped in ((1, 0), (0, 1)):
            sf.record_outcome(outcome_of(failed, stopped))
            with pytest.raises(SystemExit) as ended:
                sf.finish(explicit=False)
            assert ended.value.code == 1
            assert "hydra.sweep.dir=sw" in capsys.readouterr().err or not stopped
    finally:
        sf.record_outcome(None)


def test_a_job_is_named_by_the_overrides_not_every_job_shares() -> None:
    jobs = [["c=0", "s=1"], ["c=0", "s=2"], ["c=1", "s=3"]]  # c=0: all jobs but one have it
    assert [sf.distinguishing(j, jobs) for j in jobs] == ["c=0,s=1", "c=0,s=2", "c=1,s=3"]
    assert sf.distinguishing(jobs[0], jobs[:2]) == "s=1"
    assert sf.distinguishing(["a=1"], [["a=1"], ["a=1"]]) == "a=1"  # nothing sets it apart
    assert sf.distinguishing([], [[]]) == "default"


class _Launcher:
    """Runs each job at once: the job named ``fail`` fails, the others complete."""

    def __init__(self, fail: str, not_started: str = "") -> None:
        self.fail, self.not_started, self.launched = fail, not_started, []

    def launch(self, batch: list[list[str]], initial_job_idx: int) -> list[JobReturn]:
        results = []
        for job in batch:
            self.launched.append(job[0])
            result = JobReturn(overrides=job, working_dir=f"w/{job[0]}")
            if job[0] == self.fail:
                result.status, result.return_value = JobStatus.FAILED, RuntimeError("boom")
            elif job[0] == self.not_started:
                result.status, result.return_value = JobStatus.COMPLETED, sf.NotStarted("ff")
            else:
                result.status, result.return_value = JobStatus.COMPLETED, 0.5
            results.append(result)
        return results


def run_sweeper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, launcher: _Launcher, fail_fast: bool,
    batch: int | None,
) -> sf.SweepOutcome:  # fmt: skip
    """The sweeper's loop over batches, with a launcher that runs jobs in this process."""
    monkeypatch.setattr(_sweeper, "unfinished", lambda jobs, *rest: jobs)  # nothing finished yet
    loader = SimpleNamespace(load_sweep_config=lambda **kw: None)
    sweeper = _sweeper.ResnetExpSweeper(max_batch_size=batch, fail_fast=fail_fast)
    sweeper.hydra_context = SimpleNamespace(config_loader=loader)
    sweeper.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    sweeper.launcher = launcher
    (tmp_path / sf.STOP_MARKER).write_text("seed=9\n")  # an earlier launch's marker
    try:
        sweeper.sweep(["seed=0,1,2,3"])
        assert not (tmp_path / sf.STOP_MARKER).exists()  # removed before the first job
        return sf._outcome
    finally:
        sf.record_outcome(None)


def test_the_sweeper_launches_no_batch_after_exactly_one_failure_under_fail_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launcher = _Launcher(fail="seed=1")
    outcome = run_sweeper(tmp_path, monkeypatch, launcher, fail_fast=True, batch=1)
    assert launcher.launched == ["seed=0", "seed=1"]
    assert [f.job for f in outcome.failed] == ["seed=1"] and outcome.jobs == 4
    assert outcome.not_started == ["seed=2", "seed=3"]
    # the last batch failing stops nothing more; without fail_fast every job runs
    launcher = _Launcher(fail="seed=3")
    outcome = run_sweeper(tmp_path, monkeypatch, launcher, fail_fast=True, batch=1)
    assert len(launcher.launched) == 4 and outcome.not_started == []
    launcher = _Launcher(fail="seed=0")
    outcome = run_sweeper(tmp_path, monkeypatch, launcher, fail_fast=False, batch=1)
    assert len(launcher.launched) == 4 and [f.job for f in outcome.failed] == ["seed=0"]


def test_jobs_a_worker_kept_from_starting_are_counted_as_not_started_not_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launcher = _Launcher(fail="seed=0", not_started="seed=2")  # one batch: workers stop the rest
    outcome = run_sweeper(tmp_path, monkeypatch, launcher, fail_fast=True, batch=None)
    assert len(launcher.launched) == 4
    assert [f.job for f in outcome.failed] == ["seed=0"] and outcome.not_started == ["seed=2"]
    assert outcome.failed[0].error == "RuntimeError: boom"
    assert outcome.failed[0].log_path == "w/seed=0"  # no Hydra config: its working folder


# -- GPU slots ------------------------------------------------------------------------------------


def devices(slots: list[Slot]) -> list[str]:
    return [s.device for s in slots]


def test_a_gpu_takes_a_job_from_exactly_4_gib_free() -> None:
    assert devices(plan([4 * GIB, 4 * GIB], list(range(8)))) == ["cuda:0", "cuda:1"]
    # one byte short: no GPU has room, one job on the one with the most free memory
    assert devices(plan([4 * GIB - 1, 4 * GIB - 2], list(range(8)))) == ["cuda:0"]
    assert devices(plan([4 * GIB - 2, 4 * GIB - 1], list(range(8)))) == ["cuda:1"]
    assert devices(plan([GIB, GIB], list(range(8)))) == ["cuda:0"]  # a tie: the first GPU
    assert devices(plan([8 * GIB - 1], list(range(8)))) == ["cuda:0"]  # 7.99 GiB: one job


def test_as_many_jobs_as_gpus_is_one_slot_per_gpu_each_with_half_the_cores() -> None:
    slots = plan([80 * GIB, 80 * GIB], [0, 1, 2, 3])  # cores // 2 == GPUs
    assert devices(slots) == ["cuda:0", "cuda:1"] and [s.cores for s in slots] == [(0, 1), (2, 3)]
    slots = plan([80 * GIB, 80 * GIB], [0, 1, 2])  # one core short of two jobs
    assert devices(slots) == ["cuda:0"] and slots[0].cores == (0, 1, 2)


def test_memory_bounds_each_gpu_and_the_rest_go_round_the_others() -> None:
    slots = plan([8 * GIB, 4 * GIB], list(range(16)))  # room 2 + 1 < 16 // 2
    assert devices(slots) == ["cuda:0", "cuda:1", "cuda:0"]
    assert [len(s.cores) for s in slots] == [6, 5, 5]  # 16 cores, the extra one first
    assert [s.number for s in slots] == [0, 1, 2]
    cores = [c for s in slots for c in s.cores]
    assert cores == list(range(16))  # contiguous blocks, none shared, none left out
    assert plan([8 * GIB], [5, 7, 9, 11])[1].cores == (9, 11)  # its own cores


def test_the_last_job_of_the_first_round_has_its_own_slot_and_the_next_waits() -> None:
    slots = plan([40 * GIB] * 3, list(range(6)))
    assert predicted(2, slots) == "device: cuda:2 (joblib slot 2 of 3, cores 4-5)"
    assert predicted(3, slots) == (
        "device: cuda:0 (joblib slot 0 of 3, cores 0-1), or whichever slot frees first"
    )
    assert Slot(0, "cuda:0", (3,)).describe() == "cuda:0 (joblib slot 0, core 3)"


def test_a_job_claims_the_first_slot_no_running_job_holds(tmp_path: Path) -> None:
    """Other jobs of the sweep are other open lock files (flock conflicts between them as between
    processes; the SIGKILLed holder: test_gpu_slots.py's slow test)."""
    slots = plan([40 * GIB, 40 * GIB], list(range(4)))
    (tmp_path / gpu_slots.SLOT_DIR).mkdir()
    held = try_flock(tmp_path / gpu_slots.SLOT_DIR / "0.lock")
    assert held is not None
    try:
        assert claim(slots, tmp_path) == slots[1]  # slot 0 is busy
        other = try_flock(tmp_path / gpu_slots.SLOT_DIR / "1.lock")
        assert other is None  # this job holds slot 1 now
        os.close(held)  # the job on slot 0 ends
        held = None
        assert claim(slots, tmp_path) == slots[0]  # the first free slot ...
        freed = try_flock(tmp_path / gpu_slots.SLOT_DIR / "1.lock")
        assert freed is not None  # ... and the job's earlier slot is free for the next
        os.close(freed)
    finally:
        gpu_slots.release()
        if held is not None:
            os.close(held)


def test_every_slot_held_leaves_the_job_without_one(tmp_path: Path) -> None:
    slots = plan([40 * GIB], list(range(4)))  # 2 slots on one GPU
    folder = tmp_path / gpu_slots.SLOT_DIR
    folder.mkdir()
    held = [try_flock(folder / f"{s.number}.lock") for s in slots]
    try:
        assert claim(slots, tmp_path) is None  # n_jobs set above the slots by hand
        os.close(held.pop())
        assert claim(slots, tmp_path) == slots[1]  # the last slot, once it frees
    finally:
        gpu_slots.release()
        for fd in held:
            os.close(fd)


# -- launcher traits and the slots a sweep plans --------------------------------------------------


@pytest.fixture(scope="module")
def launcher_nodes() -> dict[str, object]:
    """The hydra.launcher nodes of the basic and joblib launchers, composed once."""
    nodes = {}
    for name, extra in (("basic", []), ("joblib", ["hydra/launcher=joblib"])):
        nodes[name] = compose(extra, return_hydra_config=True).hydra.launcher
    return nodes


def joblib_with(node: object, n_jobs: object) -> object:
    copy = OmegaConf.create(OmegaConf.to_container(node, resolve=False))
    copy.n_jobs = n_jobs
    return copy


def test_only_joblib_with_its_default_n_jobs_gives_jobs_gpu_slots(
    launcher_nodes: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    slots = plan([40 * GIB, 40 * GIB], list(range(4)))
    monkeypatch.setenv(gpu_slots.PLAN_ENV, to_env(slots))  # as a 2-GPU parent planned it
    basic = launchers.launcher_traits(launcher_nodes["basic"])
    assert (basic.local_parallel, basic.gpu_slots, basic.parallel_jobs) == (False, False, 1)
    assert launchers.launcher_traits(None) == dataclasses.replace(basic, in_process=False)
    ours = launchers.launcher_traits(launcher_nodes["joblib"])
    assert (ours.local_parallel, ours.gpu_slots, ours.parallel_jobs) == (True, True, 2)
    assert launchers.planned_slots(ours) == slots
    by_hand = launchers.launcher_traits(joblib_with(launcher_nodes["joblib"], 2))
    assert (by_hand.gpu_slots, by_hand.parallel_jobs) == (False, 2)  # n_jobs set: no slots
    assert launchers.planned_slots(by_hand) == [] and launchers.planned_slots(basic) == []


def test_a_sweep_with_slots_but_no_plan_yet_plans_for_this_machine(
    launcher_nodes: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(gpu_slots.PLAN_ENV, raising=False)
    one_gpu = plan([8 * GIB], [0, 1, 2, 3])
    monkeypatch.setattr(gpu_slots, "this_machine", lambda: one_gpu)
    traits = launchers.LauncherTraits(local_parallel=True, gpu_slots=True)
    assert launchers.planned_slots(traits) == one_gpu
    assert launchers.planned_slots(launchers.LauncherTraits(local_parallel=True)) == []


def test_joblib_n_jobs_counts_down_from_every_core_and_never_below_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(launchers, "available_cpus", lambda: 8)
    assert [launchers.parallel_jobs(n) for n in (None, 1, 8, 16)] == [1, 1, 8, 16]
    assert [launchers.parallel_jobs(n) for n in (-1, -2, -8, -9, -100)] == [8, 7, 1, 1, 1]
    assert launchers.parallel_jobs(0) == 1


# -- thread shares (the order itself: test_threads.py) --------------------------------------------


def test_a_share_of_the_cores_at_its_boundaries() -> None:
    assert decide(None, parallel_jobs=8, cores=8).count == 1  # as many jobs as cores
    assert decide(None, parallel_jobs=9, cores=8).count == 1  # more jobs than cores: never 0
    assert decide(None, parallel_jobs=7, cores=8).count == 1  # 8 // 7
    assert decide(None, parallel_jobs=3, cores=8).count == 2  # rounded down, never oversubscribed
    assert decide(None, parallel_jobs=1, local_processes=1, cores=8).count is None  # alone
    assert decide(None, parallel_jobs=0, cores=8).count is None  # no sharer counted as none
    shared = decide(None, parallel_jobs=2, local_processes=2, cores=8)
    assert shared.count == 2 and shared.why == "8 cores among 4 processes"


def test_slurms_cpus_are_the_jobs_own_even_one() -> None:
    assert decide(None, slurm=1, cores=8).count == 1
    assert decide(None, slurm=1, local_processes=2, cores=8).count == 1  # never 0
    assert decide(None, slurm=5, local_processes=2, cores=8).count == 2  # rounded down
    assert decide(None, slurm=4, parallel_jobs=4, cores=8).count == 4  # its grant, not a share
    assert decide(None, slurm=4, cores=2).count == 4  # what SLURM gave, not what this node shows
    assert decide(None, slurm=4, cores=8).why == "SLURM_CPUS_PER_TASK=4"


def test_the_setting_is_capped_only_above_the_cores_and_beats_the_recorded_count() -> None:
    at = decide(8, cores=8)
    assert (at.count, at.warning, at.why) == (8, None, "trainer.num_threads")
    above = decide(9, cores=8)
    assert above.count == 8 and above.warning is not None
    assert decide(2, recorded=3, slot_cores=(0, 1, 2, 3), cores=8).count == 2
    resumed = decide(None, recorded=3, slot_cores=(4, 5), cores=8)
    assert (resumed.count, resumed.cores) == (3, (4, 5))  # the recorded count, on its slot's cores
    assert decide(None, recorded=3, parallel_jobs=8, cores=8).count == 3


# -- job identity (the rule and its properties: test_identity.py) ---------------------------------


@pytest.fixture(scope="module")
def default_config() -> dict:
    return OmegaConf.to_container(compose([]), resolve=True)


def with_value(config: dict, dotted: str, value: object) -> dict:
    out = json.loads(json.dumps(config))
    *parents, leaf = dotted.split(".")
    node = out
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return out


def test_a_machine_key_is_the_key_or_below_it_never_a_key_that_only_starts_alike() -> None:
    assert identity.is_machine_key("data.root") and identity.is_machine_key("logger.mode")
    assert identity.is_machine_key("logger")
    assert not identity.is_machine_key("data.root_subset")
    assert not identity.is_machine_key("data")
    assert not identity.is_machine_key("loggers.x")
    assert not identity.is_machine_key("trainer.num_threads_extra")


def test_one_machine_key_changes_nothing_one_real_key_changes_the_identity(
    default_config: dict,
) -> None:
    key = identity.identity_key(default_config)
    assert identity.identity_key(with_value(default_config, "data.root", "/elsewhere")) == key
    assert identity.identity_key(with_value(default_config, "trainer.num_threads", 7)) == key
    assert identity.identity_key(with_value(default_config, "hydra", {"x": 1})) == key
    real = identity.identity_key(with_value(default_config, "data.val_size", 1))
    assert real != key and identity.configuration(real) != identity.configuration(key)
    seed = identity.identity_key(with_value(default_config, "seed", 1))
    assert seed != key and identity.configuration(seed) == identity.configuration(key)


def test_how_a_value_is_written_is_not_what_it_is() -> None:
    def key(value: object, name: str = "x") -> str:
        return identity.identity_key({"trainer": {name: value}})

    assert key(8) == key(8.0) and key(0.1) == key(1e-1)
    assert key(8.5) != key(8) and key(True) != key(1)  # a bool is not the number 1
    assert key("out/") == key("out") == key("out//")
    assert key("//") == key("/") != key("")  # the root stays the root
    assert key("cuda:1", "device") == key("cuda", "device") == key("cuda:10", "device")
    assert key("mps:0", "device") == key("mps", "device") != key("cuda", "device")
    assert key("cuda:x", "device") != key("cuda", "device")
    assert key("cuda:1") != key("cuda")  # only the device's index is the machine's


def test_a_stored_key_is_this_runs_only_when_it_says_the_same() -> None:
    now = identity.identity_key({"a": 1, "b": 2})
    assert identity.same_key(now, now) and not identity.same_key(None, now)
    assert not identity.same_key(identity.identity_key({"a": 1, "b": 3}), now)
    assert not identity.same_key(identity.identity_key({"a": 1}), now)  # current: all must match
    assert identity.same_key(json.dumps({"a": 1}), now)  # an older rule's key: its own keys
    assert not identity.same_key(json.dumps({"a": 1, "c": 0}), now)  # a key this run lacks
    assert not identity.same_key("not json", now)
    diff = identity.key_difference(identity.identity_key({"a": 1}), now)
    assert diff == "b=(unset) there, 2 now"


def test_a_folder_name_fills_exactly_its_length_and_ends_in_the_hash() -> None:
    name = identity.folder_name(["x=" + "y" * 200], "k")
    assert len(name) == identity.READABLE and name.endswith("-" + identity.short_hash("k"))
    short = identity.folder_name(["x=1"], "k")
    assert short == f"x=1-{identity.short_hash('k')}"
    assert identity.folder_name(["data.root=/a"], "k").startswith("default-")  # machine only


# -- resume decisions on fabricated records -------------------------------------------------------


KEY = identity.identity_key({"optimizer": {"lr": 0.1}, "seed": 1})


def job_folder(
    folder: Path, status: str | None, key: str = KEY, checkpoint: str | None = None
) -> Path:
    """A job folder as an earlier attempt left it: summary.json, two epoch rows, a checkpoint."""
    record = RunRecord(folder)
    if status is not None:
        record.write_summary(RunSummary(status=status, config_key=key, epochs_planned=4))
    folder.mkdir(parents=True, exist_ok=True)
    record.metrics_path.write_text('{"epoch": 1}\n{"epoch": 2}\n')
    if checkpoint:
        record.checkpoint_dir.mkdir()
        (record.checkpoint_dir / checkpoint).write_bytes(b"x")
    return folder


@pytest.mark.parametrize(
    ("status", "checkpoint", "action", "reason"),
    [
        ("completed", "last.pt", "skip", "completed"),  # a finished job is never trained again
        ("diverged", "last.pt", "skip", "diverged"),  # the same configuration diverges again
        ("interrupted", "last.pt", "resume", "resume after epoch 2 of 4 (interrupted)"),
        ("terminated", "last.prev.pt", "resume", "resume after epoch 2 of 4 (terminated)"),
        ("running", "last.pt", "resume", "resume after epoch 2 of 4"),  # killed: says nothing
        ("interrupted", None, "start", "start"),
        ("failed", None, "start", "start again (failed before its first checkpoint)"),
        (None, "last.pt", "resume", "resume after epoch 2"),  # no record: no "of"
        (None, None, "start", "start"),
    ],
)
def test_each_earlier_attempt_is_skipped_resumed_or_started(
    tmp_path: Path, status: str | None, checkpoint: str | None, action: str, reason: str
) -> None:
    plan = plan_job(job_folder(tmp_path / "job", status, checkpoint=checkpoint), KEY)
    assert (plan.action, plan.reason) == (action, reason)


def test_a_record_of_one_real_key_more_is_refused_one_of_the_older_rule_is_kept(
    tmp_path: Path,
) -> None:
    other = identity.identity_key({"optimizer": {"lr": 0.2}, "seed": 1})
    with pytest.raises(ForeignJobFolder, match=r"optimizer.lr=0.2 there, 0.1 now"):
        plan_job(job_folder(tmp_path / "a", "completed", key=other), KEY)
    with pytest.raises(ForeignJobFolder):  # refused before any checkpoint is looked at
        plan_job(job_folder(tmp_path / "b", "interrupted", key=other, checkpoint="last.pt"), KEY)
    older = json.dumps({"optimizer.lr": 0.1})  # the rule before: fewer keys, no marker
    assert plan_job(job_folder(tmp_path / "c", "completed", key=older), KEY).action == "skip"


def test_a_sweep_skips_only_a_finished_run_of_the_identity(tmp_path: Path) -> None:
    held = {
        status: job_folder(tmp_path / status, status)
        for status in ("completed", "diverged", "failed", "interrupted", "running")
    }
    index = {f"k-{status}": folder for status, folder in held.items()}
    assert finished_in(index, "k-completed") == (held["completed"], "completed")
    assert finished_in(index, "k-diverged") == (held["diverged"], "diverged")
    for status in ("failed", "interrupted", "running"):
        assert finished_in(index, f"k-{status}") is None, status
    assert finished_in(index, None) is None and finished_in(index, "k-new") is None
    assert finished_in({"k": tmp_path / "empty"}, "k") is None  # a folder without a record


def test_a_checkpoint_of_another_configuration_is_refused_under_auto_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = identity.identity_key({"optimizer": {"lr": 0.2}, "seed": 1})
    path = tmp_path / "last.pt"
    resume._check_same_config(path, None, KEY, "auto")  # a checkpoint without a key: kept
    resume._check_same_config(path, KEY, KEY, "auto")
    with pytest.raises(UserError, match="optimizer.lr=0.2 there, 0.1 now"):
        resume._check_same_config(path, other, KEY, "auto")
    with caplog.at_level(logging.WARNING, "resnet_exp"):
        resume._check_same_config(path, other, KEY, str(path))  # named by hand: continued
    assert "Continuing from it as trainer.resume asks" in caplog.text


def test_a_fresh_start_keeps_no_row_of_an_attempt_that_died_before_its_checkpoint(
    tmp_path: Path,
) -> None:
    record = RunRecord(job_folder(tmp_path / "job", "failed"))
    start = resume.start_or_resume(None, record, None, None, key=KEY, setting="auto")
    assert (start.rows, start.attempts, start.resumed_from) == ([], 1, None)
    assert record.read_metrics() == [] and start.previous.status == "failed"


def test_never_ignores_every_checkpoint_and_auto_finds_none_in_an_empty_folder(
    tmp_path: Path,
) -> None:
    folder = job_folder(tmp_path / "job", "interrupted", checkpoint="last.pt")
    last = RunRecord(folder).last_checkpoint
    found: dict = {}
    assert resume.pick(found, "never", last, "cpu") is None and found["state"] is None
    assert resume.pick(found, "auto", tmp_path / "none" / "last.pt", "cpu") is None
