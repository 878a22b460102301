"""summary.json's typed record (tracking/record.py) and the one atomic-write helper (atomic.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resnet_exp.atomic import atomic_path, atomic_write
from resnet_exp.tracking.record import RunRecord, RunSummary


def test_summary_round_trips_with_the_keys_on_disk(tmp_path: Path) -> None:
    record = RunRecord(tmp_path)
    summary = RunSummary(status="completed", seed=3, job="seed=3", overrides=["seed=3"],
                         model={"block": "basic", "depth": 20}, epochs=2,
                         final={"epoch": 2, "train/loss": float("nan")})  # fmt: skip
    record.write_summary(summary)
    on_disk = json.loads(record.summary_path.read_text())
    assert list(on_disk) == ["status", "error", "seed", "job", "overrides", "model", "epochs",
                             "final"]  # fmt: skip
    assert on_disk["final"]["train/loss"] is None  # NaN is not JSON
    again = record.read_summary()
    assert again is not None and again.to_json() == on_disk


def test_a_partial_or_older_summary_reads_with_what_it_holds() -> None:
    old = {"status": "running", "seed": "7", "model": [1], "epochs": 1, "legacy_key": {"a": 1}}
    summary = RunSummary.from_json(old)
    assert summary.status == "running" and not summary.ended
    assert summary.seed is None and summary.model == {}  # the wrong kinds are not trusted
    assert summary.epochs == 1
    assert summary.to_json()["legacy_key"] == {"a": 1}  # unknown keys survive a rewrite
    assert RunSummary.from_json({}).status == "incomplete"
    assert RunSummary.from_json(["not", "a", "summary"]).status == "incomplete"


def test_mark_failed_keeps_a_finished_run_and_fails_a_running_one(tmp_path: Path) -> None:
    record = RunRecord(tmp_path)
    record.mark_failed("ValueError: boom", job="seed=1", overrides=["seed=1"])
    failed = record.read_summary()
    assert failed is not None and (failed.status, failed.job) == ("failed", "seed=1")
    record.write_summary(RunSummary(status="completed"))
    before = record.summary_path.read_bytes()
    record.mark_failed("ValueError: late")
    assert record.summary_path.read_bytes() == before


def test_atomic_write_leaves_the_old_file_whole_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.txt"
    atomic_write(target, b"first")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"first"
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]  # no temp file left
