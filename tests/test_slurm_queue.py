"""A detached SLURM sweep: which SLURM job runs which sweep job, and what SLURM says about it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from resnet_exp import slurm_queue
from resnet_exp.slurm_queue import QueueState, explain
from resnet_exp.slurm_queue import parse_states as parse_sacct
from resnet_exp.slurm_queue import parse_states as parse_squeue
from resnet_exp.status import JobStatus


def test_squeue_and_sacct_lines_become_states() -> None:
    queued = parse_squeue("12_0|PENDING|Priority\n12_1|RUNNING|None\n")
    assert queued == {"12_0": QueueState("PENDING", "Priority"), "12_1": QueueState("RUNNING")}
    assert parse_sacct("12_2|CANCELLED by 0\n12_3|OUT_OF_MEMORY\n") == {
        "12_2": QueueState("CANCELLED"),
        "12_3": QueueState("OUT_OF_MEMORY"),
    }
    assert parse_squeue("") == {} and parse_sacct("garbage") == {}


def test_status_says_why_a_job_waits_and_which_ended_without_a_record() -> None:
    assert explain("12_0", QueueState("PENDING", "Resources")) == (
        "pending",
        "queued as SLURM job 12_0, reason: Resources",
    )
    state, detail = explain("12_3", QueueState("OUT_OF_MEMORY"))
    assert state == "lost" and "SLURM job 12_3 ended in state OUT_OF_MEMORY" in detail
    assert explain("12_1", QueueState("RUNNING")) is None  # the record tells more
    assert explain("12_9", None) is None  # SLURM does not know it (accounting purged)


def test_the_last_submission_of_each_job_counts(tmp_path: Path) -> None:
    slurm_queue.record_submitted(tmp_path, [("12_0", ["seed=0"]), ("12_1", ["seed=1"])])
    slurm_queue.record_submitted(tmp_path, [("13_0", ["seed=1"])])  # seed=1 submitted again
    assert slurm_queue.latest_ids(tmp_path) == {
        frozenset(["seed=0"]): "12_0",
        frozenset(["seed=1"]): "13_0",
    }


def test_a_job_still_queued_is_not_submitted_again_and_status_shows_slurms_word(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slurm_queue.record_submitted(
        tmp_path, [("12_0", ["seed=0"]), ("12_1", ["seed=1"]), ("12_2", ["seed=2"])]
    )
    states = {"12_0": QueueState("PENDING", "Priority"), "12_1": QueueState("RUNNING"),
              "12_2": QueueState("NODE_FAIL")}  # fmt: skip
    monkeypatch.setattr(slurm_queue, "queue_states", lambda ids: {i: states[i] for i in ids})
    jobs = [["seed=0"], ["seed=1"], ["seed=2"], ["seed=3"]]
    assert slurm_queue.still_queued(tmp_path, jobs) == {0: "12_0", 1: "12_1"}
    rows = [JobStatus("-", job, "pending", "not started") for job in jobs]
    slurm_queue.annotate(tmp_path, rows)
    assert [(r.state, r.detail.split(",")[0]) for r in rows] == [
        ("pending", "queued as SLURM job 12_0"),
        ("pending", "running as SLURM job 12_1"),  # started, no record yet
        ("lost", "SLURM job 12_2 ended in state NODE_FAIL without a record; re-run the sweep "
                 "command to run it again"),
        ("pending", "not started"),  # never submitted
    ]  # fmt: skip


# -- issue 31, class 12: a SLURM job that can never start ---------------------------------------


def test_a_job_pending_for_partitionconfig_is_lost_and_no_watch_waits_on_it() -> None:
    state = QueueState("PENDING", "PartitionConfig")
    assert not state.active  # status --watch waits only on active jobs (row.queued)
    status, detail = explain("12_0", state)
    assert status == "lost" and "can never start" in detail and "scancel 12_0" in detail


@pytest.mark.parametrize(
    ("args", "refused"),
    [
        ([], True),  # the launcher's defaults: 4 CPUs, 16 GB
        (["hydra.launcher.cpus_per_task=2", "hydra.launcher.mem_gb=3"], False),
        (["hydra.launcher.cpus_per_task=2", "hydra.launcher.mem_gb=5"], True),
        (
            [
                "hydra.launcher.cpus_per_task=1",
                "hydra.launcher.tasks_per_node=3",
                "hydra.launcher.mem_gb=1",
            ],
            True,
        ),  # fmt: skip
    ],
)
def test_a_slurm_job_no_node_of_its_partition_can_hold_is_refused_before_submitting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], refused: bool
) -> None:
    from resnet_exp.hydra_glue.command import parse_command
    from resnet_exp.hydra_glue.preflight import CommandError, check_command

    pytest.importorskip("submitit")
    sinfo = tmp_path / "sinfo"  # two 2-CPU nodes with 4000 MB each (sinfo -N -o '%c %m')
    sinfo.write_text("#!/bin/sh\necho '2 4000'\necho '2 4000+'\n")
    sinfo.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    command = parse_command(["-m", "hydra/launcher=slurm", "seed=0,1", *args])
    if not refused:
        check_command(command)
        return
    with pytest.raises(CommandError) as info:
        check_command(command)
    message = str(info.value)
    assert "pending forever (reason PartitionConfig)" in message and "at most 2 CPUs" in message
    assert "\n" not in message
