"""Reliability (issue #6): kill-and-resume, damaged checkpoints, bad inputs, divergence, secrets,
W&B failures. Real subprocesses on real Fashion-MNIST, sized to take seconds each.

Kill points are injected by the tests (``tests/faults/sitecustomize.py``, loaded through
``cli.fault_env``): the training process SIGKILLs itself at an exact moment, so the tests need no
timing and no polling, and production code reads no test switch.
"""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import signal
from pathlib import Path

import pytest
import torch
from cli import fault_env, refused_in_process, run_cli

from resnet_exp.tracking.record import previous_path
from resnet_exp.training.checkpoint import (
    CorruptCheckpoint,
    load_checkpoint,
    load_latest,
    save_checkpoint,
)

TIMING = {"time/epoch_s", "throughput/img_s"}
KILLED = -signal.SIGKILL
STEPS_PER_EPOCH = 8  # 320 images - 64 validation = 256, batch 32


def tiny(root: Path, *extra: str) -> list[str]:
    """3 epochs of 8 steps of a depth-8 net: about a second of training per epoch."""
    return [
        f"data.root={root}",
        "data.train_subset=320",
        "data.val_size=64",
        "data.test_subset=128",
        "data.batch_size=32",
        "model.depth=8",
        "trainer.epochs=3",
        "trainer.num_threads=1",
        "trainer.progress=false",
        "logger=none",
        "seed=5",
        *extra,
    ]


def read_rows(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def epochs_of(rows: list[dict]) -> list[int]:
    """The epoch numbers of the epoch rows (per-step rows carry no epoch)."""
    return [r["epoch"] for r in rows if "epoch" in r]


def untimed(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def summary_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, fmnist_root: Path) -> Path:
    """An uninterrupted run in the default outputs/<date>/<time> folder of its own cwd."""
    cwd = tmp_path_factory.mktemp("reference")
    result = run_cli(*tiny(fmnist_root, "trainer.checkpoint_every_steps=3"), cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = [p.parent for p in (cwd / "outputs").glob("*/*/.hydra")]
    assert epochs_of(read_rows(run_dir)) == [1, 2, 3]
    return run_dir


# -- kill and resume --


@pytest.mark.slow
def test_killed_four_times_and_a_damaged_last_pt_still_match_an_uninterrupted_run(
    tmp_path: Path, fmnist_root: Path, reference: Path
) -> None:
    """One run dir, the same command each time; checkpoints every 3 steps (8 steps per epoch)."""
    run_dir = tmp_path / "run"
    args = tiny(fmnist_root, "trainer.checkpoint_every_steps=3", f"hydra.run.dir={run_dir}")
    expected = untimed(read_rows(reference))
    # (kill point, epochs whose rows must be on disk right after the kill)
    kills = [
        ("step:5", []),  # mid-epoch 1, 2 steps after the step-3 checkpoint
        ("metrics:1", [1]),  # row 1 written, its checkpoint not: the resume must drop row 1
        ("eval:2", [1]),  # during epoch 2's evaluation (last checkpoint: step 15)
        ("epoch:2", [1, 2]),  # right after the epoch-2 boundary checkpoint
    ]
    for point, epochs in kills:
        result = run_cli(*args, cwd=tmp_path, env=fault_env(kill_at=point))
        assert result.returncode == KILLED, (point, result.stderr[-2000:])
        rows = read_rows(run_dir)
        assert epochs_of(rows) == epochs, point
        assert untimed(rows) == expected[: len(rows)], point
        assert summary_of(run_dir)["status"] == "running"  # a killed run says so, never torn

    # Damage last.pt from outside (atomic writes never tear it): auto falls back to last.prev.pt.
    last = run_dir / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 3])
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log_text = next(run_dir.glob("*.log")).read_text()
    assert f"resuming from the previous checkpoint {previous_path(last)}" in log_text
    assert f"{last} is damaged" in log_text

    rows = read_rows(run_dir)
    assert untimed(rows) == expected  # neither repeated nor skipped, bit-identical values
    summary, ref_summary = summary_of(run_dir), summary_of(reference)
    assert summary["status"] == "completed" and summary["epochs"] == 3
    assert summary["attempts"] == 5
    for key in ("final", "best"):
        assert untimed([summary[key]]) == untimed([ref_summary[key]])
    assert summary["steps"] == ref_summary["steps"] == 3 * STEPS_PER_EPOCH

    # The same command once more: the checkpoint is at the final epoch, so it just finishes.
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_rows(run_dir) == rows
    again = summary_of(run_dir)
    assert again["status"] == "completed" and again["attempts"] == 6
    assert again["final"] == summary["final"]
    assert again["wall_time_s"] >= summary["wall_time_s"]  # accumulates over attempts


# -- checkpoint files --


class _WritesAFile:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.write_text, (self.marker, "code ran"))


def _state(epoch: int) -> dict:
    return {"model": {"w": torch.full((2,), float(epoch))}, "epoch": epoch, "step": 4 * epoch}


def test_last_pt_rotates_and_a_truncated_one_falls_back_to_the_previous(tmp_path: Path) -> None:
    last = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(last, _state(1), keep_previous=True)
    save_checkpoint(last, _state(2), keep_previous=True)
    assert load_checkpoint(previous_path(last))["epoch"] == 1
    path, state = load_latest(last)
    assert (path, state["epoch"]) == (last, 2)
    last.write_bytes(last.read_bytes()[:100])
    path, state = load_latest(last)
    assert (path, state["epoch"]) == (previous_path(last), 1)
    previous_path(last).write_bytes(b"")  # both damaged: a clear error naming both files
    with pytest.raises(CorruptCheckpoint) as info:
        load_latest(last)
    assert str(last) in str(info.value) and str(previous_path(last)) in str(info.value)
    assert load_latest(tmp_path / "none" / "last.pt") is None  # nothing there: a fresh start
    assert not list(last.parent.glob(".*.tmp"))  # no temp files left behind


@pytest.mark.parametrize("how", ["torch.save", "plain pickle"])
def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(
    tmp_path: Path, how: str
) -> None:
    marker = tmp_path / "marker.txt"
    evil = tmp_path / "evil.pt"
    payload = {"model": _WritesAFile(marker), "epoch": 1}
    if how == "torch.save":
        torch.save(payload, evil)
    else:
        evil.write_bytes(pickle.dumps(payload))
    with pytest.raises(CorruptCheckpoint, match="cannot be loaded safely"):
        load_checkpoint(evil)
    assert not marker.exists()


# -- bad inputs through the command line --

# (overrides, text stderr must contain). {root}: real data, {empty}: an empty folder, {missing},
# {corrupt}, {evil}: checkpoint files made by the test.
BAD_INPUTS = [
    (["model=resnet999"], "resnet999"),
    (["data=imagenet"], "imagenet"),
    (["optimizer=rmsprop"], "rmsprop"),
    (["model/block=dense"], "dense"),
    (["data.batch_size=abc"], "abc"),
    (["trainer.epoch=3"], "trainer.epoch"),
    (["optimizer.lr=-0.1"], "optimizer.lr=-0.1"),
    (["data.batch_size=0"], "data.batch_size=0"),
    (["trainer.epochs=0"], "trainer.epochs=0"),
    (["data.train_subset=320", "data.val_size=320"], "data.val_size=320"),
    (["data=cifar10", "data.root={empty}"], "{empty}"),
    (["trainer.device=tpu"], "'tpu'"),
    (["trainer.device=cuda", "data.root={root}"], "'cuda'"),
    (["trainer.precision=8"], "trainer.precision='8'"),
    (["data.resize=0"], "data.resize=0"),
    (["logger=wandb", "logger.mode=sometimes"], "'sometimes'"),
    (["model.shortcut=D"], "'D'"),
    (["model.depth=7"], "model.depth=7"),
    (["trainer.resume={missing}"], "{missing}"),
    (["trainer.resume={corrupt}", "data.root={root}"], "{corrupt}"),
    (["trainer.resume={evil}", "data.root={root}"], "{evil}"),
    (["scheduler.milestones=[0.5,1.5]"], "1.5"),
    (["scheduler.gamma=0"], "scheduler.gamma=0"),
    (["optimizer.momentum=1.5"], "optimizer.momentum=1.5"),
    (["data.loader=foo"], "'foo'"),
    (["data.test_subset=0"], "data.test_subset=0"),
    (["trainer.checkpoint_every_steps=-1"], "trainer.checkpoint_every_steps=-1"),
]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad-files")
    (folder / "empty").mkdir()
    corrupt = folder / "corrupt.pt"
    save_checkpoint(corrupt, _state(1))
    corrupt.write_bytes(corrupt.read_bytes()[:200])
    evil = folder / "evil.pt"
    torch.save({"model": _WritesAFile(folder / "marker.txt"), "epoch": 1}, evil)
    return {"empty": folder / "empty", "missing": folder / "no-such.pt", "corrupt": corrupt,
            "evil": evil, "marker": folder / "marker.txt"}  # fmt: skip


#: Refused only once the job runs (the data, the device, the model or the checkpoint is read);
#: the other BAD_INPUTS are refused before Hydra starts.
REFUSED_IN_THE_JOB = {"data=cifar10", "trainer.device=cuda", "model.depth=7",
                      "trainer.resume={corrupt}", "trainer.resume={evil}"}  # fmt: skip
BEFORE_HYDRA = [(o, n) for o, n in BAD_INPUTS if o[0] not in REFUSED_IN_THE_JOB]


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        pytest.param(o, n, id=" ".join(o),  # before Hydra: ..._refused_before_hydra_starts too
                     marks=() if o[0] in REFUSED_IN_THE_JOB else pytest.mark.slow)
        for o, n in BAD_INPUTS
    ],
)  # fmt: skip
def test_bad_input_is_one_clear_error_and_earlier_runs_stay_untouched(
    overrides: list[str],
    needle: str,
    reference: Path,
    bad_files: dict[str, Path],
    fmnist_root: Path,
) -> None:
    if "trainer.device=cuda" in overrides and torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    names = {k: str(v) for k, v in bad_files.items()} | {"root": str(fmnist_root)}
    cwd = reference.parents[2]  # the reference run's cwd: new runs land next to it in outputs/
    before = snapshot(reference)
    existing = {p.parent for p in cwd.glob("outputs/*/*/.hydra")}
    result = run_cli(*[o.format(**names) for o in overrides], cwd=cwd)
    assert result.returncode != 0
    assert needle.format(**names) in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert snapshot(reference) == before
    assert not bad_files["marker"].exists()
    for run_dir in {p.parent for p in cwd.glob("outputs/*/*/.hydra")} - existing:
        # A failed run leaves its config, its log and at most a 'failed' record: nothing that
        # looks like training happened.
        assert not (run_dir / "metrics.jsonl").exists()
        assert not (run_dir / "checkpoints").exists()
        if (run_dir / "summary.json").exists():
            assert summary_of(run_dir)["status"] == "failed"


@pytest.mark.parametrize(
    ("overrides", "needle"), BEFORE_HYDRA, ids=[" ".join(o) for o, _ in BEFORE_HYDRA]
)
def test_bad_input_is_refused_before_hydra_starts_and_earlier_runs_stay_untouched(
    overrides: list[str], needle: str, reference: Path, bad_files: dict[str, Path],
    fmnist_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """The CLI's cases above, in this process (the entry point up to where Hydra would start)."""
    names = {k: str(v) for k, v in bad_files.items()} | {"root": str(fmnist_root)}
    cwd = reference.parents[2]
    before, folders = snapshot(reference), sorted(cwd.rglob("*"))
    result = refused_in_process(*[o.format(**names) for o in overrides], cwd=cwd,
                                monkeypatch=monkeypatch, capsys=capsys)  # fmt: skip
    assert result.returncode == 2
    assert needle.format(**names) in result.stderr, result.stderr[-3000:]
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert snapshot(reference) == before and sorted(cwd.rglob("*")) == folders  # no new folder


# -- divergence --


def test_a_nan_run_stops_early_as_diverged_with_exit_code_3(
    tmp_path: Path, fmnist_root: Path
) -> None:
    run_dir = tmp_path / "nan"
    result = run_cli(
        *tiny(fmnist_root, "optimizer.lr=1e6", "trainer.checkpoint_every_steps=2"),
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 3, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "diverged" in errors[0] and "optimizer.lr" in errors[0]
    summary = summary_of(run_dir)
    assert summary["status"] == "diverged"
    rows = [r for r in read_rows(run_dir) if "epoch" in r]
    assert len(rows) == 1 and "val/err" not in rows[0]  # the partial epoch, not evaluated
    # Where a huge lr blows up moves with any change to training, so only the command line's
    # contract is checked here; the step it stops at is tests/test_divergence.py's (a NaN batch).
    last = run_dir / "checkpoints" / "last.pt"
    if last.exists():  # no checkpoint ever holds non-finite weights
        state = load_checkpoint(last)
        assert state["step"] < rows[0]["step"]
        assert all(
            torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point()
        )


@pytest.mark.slow
def test_a_diverged_job_does_not_stop_the_sweep_or_its_report(
    tmp_path: Path, fmnist_root: Path
) -> None:
    sweep = tmp_path / "sweep"
    result = run_cli(
        "--multirun",
        *tiny(fmnist_root, "trainer.epochs=1"),
        "optimizer.lr=0.05,1e6",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    statuses = {summary_of(job.parent)["status"] for job in sweep.glob("*/summary.json")}
    assert statuses == {"completed", "diverged"}
    report = (sweep / "report.md").read_text()
    assert "diverged" in report


# -- secrets and W&B --

FAKE_KEY = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.slow
def test_the_wandb_api_key_is_written_nowhere(tmp_path: Path, fmnist_root: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_cli(
        *tiny(fmnist_root, "trainer.epochs=1"),
        "logger=wandb",
        "logger.mode=offline",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        env={"WANDB_API_KEY": FAKE_KEY},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert list(run_dir.glob("wandb/offline-run-*/run-*.wandb")), "W&B wrote its files"
    assert list(run_dir.glob(".hydra/*.yaml")) and list(run_dir.glob("*.log"))
    leaks = [str(p) for p in files if FAKE_KEY.encode() in p.read_bytes()]
    assert leaks == []
    assert FAKE_KEY not in result.stdout + result.stderr


FLAKY_MAIN = """
import wandb.sdk.wandb_run as wandb_run

original = wandb_run.Run.log

def log(self, data, step=None, *args, **kwargs):
    if step is not None and step >= 2:
        raise RuntimeError("simulated W&B outage")
    return original(self, data, step, *args, **kwargs)

wandb_run.Run.log = log

from resnet_exp.app import entry

entry()
"""


@pytest.mark.slow
def test_wandb_failing_mid_run_leaves_training_and_the_record_complete(
    tmp_path: Path, fmnist_root: Path
) -> None:
    (tmp_path / "flaky_main.py").write_text(FLAKY_MAIN)
    run_dir = tmp_path / "run"
    result = run_cli(
        *tiny(fmnist_root),
        "logger=wandb",
        "logger.mode=offline",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        module="flaky_main",
        env={"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert epochs_of(read_rows(run_dir)) == [1, 2, 3]
    assert summary_of(run_dir)["status"] == "completed"
    output = result.stdout + result.stderr + next(run_dir.glob("*.log")).read_text()
    assert "W&B logging failed in log() (RuntimeError: simulated W&B outage)" in output


# -- an unloadable last.pt (issue 31, class 10) --


def _stopped_mid_epoch_2(tmp_path: Path) -> Path:
    """A tiny run stopped at step 4 (epoch 1 is 3 steps): last.pt at step 4, the spare epoch 1."""
    from tiny_run import train_tiny

    train_tiny(tmp_path, stop_after=4)
    return tmp_path / "run" / "checkpoints" / "last.pt"


@pytest.mark.parametrize("kind", ["directory", "fifo", "broken link"])
def test_a_last_pt_that_is_not_a_file_falls_back_to_the_spare_and_keeps_it(
    tmp_path: Path, kind: str
) -> None:
    """Never opened (a FIFO would block), never rotated into the spare: moved aside, the run
    resumes from last.prev.pt and completes."""
    from tiny_run import train_tiny

    last = _stopped_mid_epoch_2(tmp_path)
    last.unlink()
    {"directory": last.mkdir, "fifo": lambda: os.mkfifo(last),
     "broken link": lambda: last.symlink_to("nowhere.pt")}[kind]()  # fmt: skip
    signal.alarm(120)  # a hang fails the test instead of the suite
    try:
        run = train_tiny(tmp_path)
    finally:
        signal.alarm(0)
    assert run.summary.status == "completed" and run.summary.resumed_from["epoch"] == 1
    assert load_checkpoint(last)["epoch"] == 2
    assert load_checkpoint(previous_path(last))["epoch"] == 1  # the spare, intact
    assert len(list(last.parent.glob("last.damaged-*.pt"))) == 1


def test_an_unloadable_last_pt_without_a_spare_is_one_paragraph_not_a_fresh_start(
    tmp_path: Path,
) -> None:
    from tiny_run import train_tiny

    from resnet_exp.errors import UserError

    last = _stopped_mid_epoch_2(tmp_path)
    previous_path(last).unlink()
    last.unlink()
    last.mkdir()
    rows = (tmp_path / "run" / "metrics.jsonl").read_bytes()
    with pytest.raises(UserError, match="a directory, FIFO or link is there, not a file"):
        train_tiny(tmp_path)
    assert last.is_dir() and (tmp_path / "run" / "metrics.jsonl").read_bytes() == rows


def test_checkpoints_gone_while_the_record_says_interrupted_is_one_paragraph(
    tmp_path: Path,
) -> None:
    from tiny_run import train_tiny

    from resnet_exp.errors import UserError

    last = _stopped_mid_epoch_2(tmp_path)
    last.unlink()
    previous_path(last).unlink()
    rows = (tmp_path / "run" / "metrics.jsonl").read_bytes()
    with pytest.raises(UserError, match="terminated after epoch 1.*trainer.resume=never"):
        train_tiny(tmp_path)
    assert (tmp_path / "run" / "metrics.jsonl").read_bytes() == rows
    assert train_tiny(tmp_path, "trainer.resume=never").summary.status == "completed"
