"""Every failure is ours (issue 14): signals, damaged checkpoints, a full disk, via the real CLI.

Each test drives ``python -m resnet_exp`` as a user does and checks what the user sees (exit code,
one line or paragraph on stderr, no traceback) and what is left on disk.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cli import fault_env, refused_in_process, run_cli, start_cli
from wandb_files import read_offline_run

from resnet_exp.tracking.record import previous_path
from resnet_exp.training.checkpoint import load_checkpoint

TIMING = {"time/epoch_s", "throughput/img_s"}


def tiny(root: Path, *extra: str) -> list[str]:
    """2 epochs of 38 steps of a depth-8 net, a checkpoint every 4 steps: a few seconds, and long
    enough after the first checkpoint that a signal sent then lands mid-training on a busy CI."""
    return [
        f"data.root={root}",
        "data.train_subset=1280",
        "data.val_size=64",
        "data.test_subset=128",
        "data.batch_size=32",
        "model.depth=8",
        "trainer.epochs=2",
        "trainer.num_threads=1",
        "trainer.progress=false",
        "trainer.checkpoint_every_steps=4",
        "seed=5",
        *extra,
    ]


def untimed_rows(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def summary_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def assert_user_error(result: subprocess.CompletedProcess, *named: str, code: int = 2) -> None:
    """Non-zero exit ``code``, no traceback, and each of ``named`` in what the user reads."""
    assert result.returncode == code, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for text in named:
        assert text in result.stderr, (text, result.stderr[-3000:])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, fmnist_root: Path) -> Path:
    cwd = tmp_path_factory.mktemp("uninterrupted")
    run_dir = cwd / "run"
    result = run_cli(*tiny(fmnist_root, "logger=none", f"hydra.run.dir={run_dir}"), cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


# -- signals --


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "status", "logger"),
    [(signal.SIGINT, "interrupted", "none"), (signal.SIGTERM, "terminated", "wandb")],
)
def test_a_signal_mid_epoch_stops_cleanly_and_the_same_command_resumes_exactly(
    tmp_path: Path, fmnist_root: Path, uninterrupted: Path, signum: int, status: str, logger: str
) -> None:
    run_dir = tmp_path / "run"
    args = tiny(fmnist_root, f"logger={logger}", f"hydra.run.dir={run_dir}")
    process = start_cli(*args, cwd=tmp_path)
    last = run_dir / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while not last.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, process.communicate()[1][-3000:]  # still training: mid-epoch
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=300)

    assert process.returncode == 128 + signum, stderr[-3000:]
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{status} by {signal.Signals(signum).name}")
    summary = summary_of(run_dir)
    assert summary["status"] == status and summary["error"] is None
    state = load_checkpoint(last)  # intact, and at the step the run stopped at (mid-epoch)
    assert state["step"] == summary["steps"] and 0 < state["step_in_epoch"] < 38
    if logger == "wandb":  # the W&B run was finished, with the same status
        run = read_offline_run(run_dir)
        assert run["summary"]["status"] == status and run["exit_code"] == 1

    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert untimed_rows(run_dir) == untimed_rows(uninterrupted)
    again = summary_of(run_dir)
    assert again["status"] == "completed" and again["attempts"] == 2
    assert again["resumed_from"]["step"] == state["step"]


# -- checkpoints --


@pytest.mark.slow
def test_a_damaged_last_pt_is_quarantined_never_rotated_into_the_spare(
    tmp_path: Path, fmnist_root: Path, uninterrupted: Path
) -> None:
    run_dir = tmp_path / "run"
    args = tiny(fmnist_root, "logger=none", f"hydra.run.dir={run_dir}")
    result = run_cli(*args, cwd=tmp_path, env=fault_env(kill_at="epoch:1"))
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    last = run_dir / "checkpoints" / "last.pt"
    damaged = last.read_bytes()[:1000]
    last.write_bytes(damaged)
    before = snapshot(run_dir)
    refused = run_cli(*args, "seed=6", cwd=tmp_path)  # another config: auto refuses to continue
    assert_user_error(refused, "was written by a different configuration")
    assert snapshot(run_dir) == before  # nothing moved, nothing rewritten

    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (kept,) = last.parent.glob("last.damaged-*.pt")
    assert kept.read_bytes() == damaged
    for path in (last, previous_path(last)):  # both loadable: the damaged bytes went nowhere else
        assert load_checkpoint(path)["epoch"] >= 1
    log_text = next(run_dir.glob("*.log")).read_text()
    assert f"the damaged {last} is kept as {kept}" in log_text
    assert untimed_rows(run_dir) == untimed_rows(uninterrupted)


def _mount_tmpfs(where: Path, size: str) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root (CI runs the tests as root)")
    where.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")


@pytest.mark.slow
def test_a_full_disk_while_checkpointing_is_one_paragraph_and_the_previous_checkpoint_loads(
    tmp_path: Path, fmnist_root: Path
) -> None:
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "8m")
    try:
        run_dir = disk / "run"
        args = tiny(fmnist_root, "logger=none", f"hydra.run.dir={run_dir}")
        result = run_cli(*args, cwd=tmp_path, env=fault_env(kill_at="step:8"))
        assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
        last = run_dir / "checkpoints" / "last.pt"
        before = {p.name: p.read_bytes() for p in last.parent.iterdir()}
        size = len(before["last.pt"])
        # Fill the disk so that the log, metrics and summary still fit, but no new checkpoint.
        free = shutil.disk_usage(disk).free
        filler = disk / "filler"
        with filler.open("wb") as handle:
            handle.write(b"\0" * max(free - size // 2, 0))

        result = run_cli(*args, cwd=tmp_path)
        assert_user_error(result, "No space left on device", str(last), "intact")
        assert "\n" not in result.stderr.strip()  # one paragraph
        after = {p.name: p.read_bytes() for p in last.parent.iterdir()}
        assert after == before  # the previous checkpoints untouched, no temp file left
        assert load_checkpoint(last)["step"] == 8
        assert summary_of(run_dir)["status"] == "failed"

        filler.unlink()  # space again: the same command resumes from it
        result = run_cli(*args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        assert summary_of(run_dir)["status"] == "completed"
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# -- bad input given to an existing run folder: one paragraph, the folder byte-identical --


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every regular file's bytes (not a link's: one to /proc/kmsg blocks a reader)."""
    files = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]
    return {str(p.relative_to(folder)): p.read_bytes() for p in files}


def small(root: Path, *extra: str) -> list[str]:
    """One epoch of 8 steps of a depth-8 net."""
    return [
        f"data.root={root}",
        "data.train_subset=320",
        "data.val_size=64",
        "data.test_subset=128",
        "data.batch_size=32",
        "model.depth=8",
        "trainer.epochs=1",
        "trainer.num_threads=1",
        "trainer.progress=false",
        "logger=none",
        *extra,
    ]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, fmnist_root: Path) -> Path:
    """A completed run's folder that bad commands are pointed at."""
    cwd = tmp_path_factory.mktemp("finished")
    result = run_cli(*small(fmnist_root, f"hydra.run.dir={cwd / 'run'}"), cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd / "run"


def _foreign_checkpoint(tmp_path: Path, finished: Path, how: str) -> Path:
    """A resnet_exp-shaped checkpoint of another network, or of this one with a wrong shape."""
    import torch

    from resnet_exp.models import PlainBlock, ResNet

    state = load_checkpoint(finished / "checkpoints" / "last.pt")
    if how == "other-model":
        other = ResNet(block=PlainBlock, depth=14, in_channels=3, num_classes=100)
        state["model"] = other.state_dict()
    else:
        name = next(k for k, v in state["model"].items() if v.ndim == 4)
        weight = state["model"][name]
        state["model"][name] = torch.zeros(weight.shape[0] + 1, *weight.shape[1:])
    path = tmp_path / f"{how}.pt"
    torch.save(state, path)
    return path


# (overrides, text the error must name); the class of each is in the comment.
BAD_VALUES = [
    (["model.shortcut=D"], "model.shortcut='D'"),  # a bad value
    (["+trainer.epoch=2"], "trainer.epoch is not a config key"),  # unknown keys, with +
    (["+foo=1"], "foo is not a config key"),
    (["+data.colour=1"], "data.colour is not a config key"),
    (["seed=99999999999999999999"], "seed=99999999999999999999"),  # out of the RNG's range
    (["seed=-1"], "seed=-1"),
    (["trainer.epochs=abc"], "trainer.epochs=abc"),  # a wrong type
    (["model.depth=[1"], "model.depth=[1"),  # not parseable
    (["data.std=[0]"], "data.std="),
    (["data.train_subset=1", "data.val_size=0"], "data.train_subset=1 is too small"),
    (["scheduler.warmup_steps=8"], "scheduler.warmup_steps=8"),  # found after the data loads
    (["data.test_subset=10001"], "data.test_subset=10001"),
    (["data.batch_size=257"], "data.batch_size=257 is more than the 256 training images"),
    (["data.num_workers=2"], "data.num_workers=2 has no effect"),
    (["trainer.resume=other-model"], "does not fit this run's model"),  # foreign checkpoints
    (["trainer.resume=wrong-shape"], "does not fit this run's model"),
]


#: Refused only once the job runs (after the data, the model or the checkpoint is read); the other
#: BAD_VALUES are refused before Hydra starts.
REFUSED_IN_THE_JOB = {"scheduler.warmup_steps=8", "data.test_subset=10001", "data.batch_size=257",
                      "trainer.resume=other-model", "trainer.resume=wrong-shape"}  # fmt: skip
BEFORE_HYDRA = [(e, n) for e, n in BAD_VALUES if e[0] not in REFUSED_IN_THE_JOB]


def _slow_unless_in_the_job(cases: list[tuple[list[str], str]]) -> list:
    """Each case as a parameter; those refused before Hydra starts are slow through the CLI (the
    same case runs in this process in ..._is_refused_before_hydra_starts)."""
    return [
        pytest.param(e, n, id=" ".join(e),
                     marks=() if e[0] in REFUSED_IN_THE_JOB else pytest.mark.slow)
        for e, n in cases
    ]  # fmt: skip


@pytest.mark.parametrize(("extra", "named"), _slow_unless_in_the_job(BAD_VALUES))
def test_a_bad_value_for_an_existing_run_folder_changes_nothing_there(
    tmp_path: Path, fmnist_root: Path, finished: Path, extra: list[str], named: str
) -> None:
    extra = [
        f"trainer.resume={_foreign_checkpoint(tmp_path, finished, e.split('=')[1])}"
        if e.startswith("trainer.resume=")
        else e
        for e in extra
    ]
    before = snapshot(finished)
    result = run_cli(*small(fmnist_root, f"hydra.run.dir={finished}", *extra), cwd=tmp_path)
    assert_user_error(result, named)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert snapshot(finished) == before


@pytest.mark.parametrize(
    ("extra", "named"), BEFORE_HYDRA, ids=[" ".join(e) for e, _ in BEFORE_HYDRA]
)
def test_a_bad_value_for_an_existing_run_folder_is_refused_before_hydra_starts(
    tmp_path: Path, fmnist_root: Path, finished: Path, extra: list[str], named: str,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """The CLI's cases above, in this process (the entry point up to where Hydra would start)."""
    before = snapshot(finished)
    result = refused_in_process(*small(fmnist_root, f"hydra.run.dir={finished}", *extra),
                                cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)  # fmt: skip
    assert_user_error(result, named)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert snapshot(finished) == before


EMPTY_OR_QUOTED = [
    (["hydra.run.dir="], "hydra.run.dir is empty"),
    (['hydra.run.dir="my runs/a"', "trainer.epochs=abc"], "trainer.epochs=abc"),
    (["trainer.epochs=abc"], "trainer.epochs=abc"),  # the default dated folder
    (["--multirun", "hydra.sweep.dir=", "seed=1,2"], "hydra.sweep.dir is empty"),
]


@pytest.mark.slow  # in this process: ..._leave_no_folder_behind_in_process
def test_an_empty_or_quoted_run_dir_and_composition_errors_leave_no_folder_behind(
    tmp_path: Path,
) -> None:
    for args, named in EMPTY_OR_QUOTED:
        result = run_cli(*args, cwd=tmp_path)
        assert_user_error(result, named)
        assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == []


def test_an_empty_or_quoted_run_dir_and_composition_errors_leave_no_folder_behind_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for args, named in EMPTY_OR_QUOTED:
        result = refused_in_process(*args, cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
        assert_user_error(result, named)
        assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == []


def test_a_read_only_run_folder_is_one_paragraph(tmp_path: Path, finished: Path) -> None:
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "8m")
    try:
        shutil.copytree(finished, disk / "run")
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        before = snapshot(disk / "run")
        for run_dir in (disk / "run", disk / "new"):
            result = run_cli(f"hydra.run.dir={run_dir}", "trainer.epochs=2", cwd=tmp_path)
            assert_user_error(result, f"hydra.run.dir='{run_dir}'", "read-only file system")
        assert snapshot(disk / "run") == before
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# -- sweeps: every job validated before the first starts --

SWEEPS = [
    (["model.shortcut=A,D"], "job 1 of 2 of the sweep (model.shortcut=D)"),
    (["model.shortcut=D,A"], "job 0 of 2 of the sweep (model.shortcut=D)"),
    (["model.depth=8,abc"], "model.depth=abc"),
    (["seed=1,2,-5"], "job 2 of 3 of the sweep (seed=-5): seed=-5"),  # replicates: seeds alone
    (["seed=1,2", "+trainer.epoch=2"], "trainer.epoch is not a config key"),
    (["seed=1,2", "model.depth=[8"], "cannot parse the override 'model.depth=[8'"),
    (["seed=1,2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=0"], "n_jobs == 0"),
    (["seed=1,2", "hydra.launcher.foo=1"], "hydra.launcher.foo"),
    (["experiment=degradation_quick", "model.shortcut=Q"], "model.shortcut='Q'"),
]


@pytest.mark.slow  # in this process: test_a_sweep_with_one_bad_job_starts_none_in_process
@pytest.mark.parametrize("dry", [False, True], ids=["run", "--cfg job"])
@pytest.mark.parametrize(("extra", "named"), SWEEPS, ids=[" ".join(e) for e, _ in SWEEPS])
def test_a_sweep_with_one_bad_job_starts_none(
    tmp_path: Path, fmnist_root: Path, extra: list[str], named: str, dry: bool
) -> None:
    sweep_dir = tmp_path / "sweep"
    args = ["--multirun", *small(fmnist_root, f"hydra.sweep.dir={sweep_dir}", *extra)]
    result = run_cli(*args, *(["--cfg", "job"] if dry else []), cwd=tmp_path)
    assert_user_error(result, named)
    assert not sweep_dir.exists()
    assert result.stdout == "" or dry is False


@pytest.mark.parametrize("dry", [False, True], ids=["run", "--cfg job"])
@pytest.mark.parametrize(("extra", "named"), SWEEPS, ids=[" ".join(e) for e, _ in SWEEPS])
def test_a_sweep_with_one_bad_job_starts_none_in_process(
    tmp_path: Path, fmnist_root: Path, extra: list[str], named: str, dry: bool,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    sweep_dir = tmp_path / "sweep"
    args = ["--multirun", *small(fmnist_root, f"hydra.sweep.dir={sweep_dir}", *extra)]
    result = refused_in_process(*args, *(["--cfg", "job"] if dry else []), cwd=tmp_path,
                                monkeypatch=monkeypatch, capsys=capsys)  # fmt: skip
    assert_user_error(result, named)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert not sweep_dir.exists()
    assert result.stdout == ""


# -- tools --


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("data.resize=0", "data.resize=0"),  # training rejects it, so does the summary tool
        ("data.std=0", "data.std=0: Invalid value assigned"),  # with the reason
        ("data.std=[0]", "data.std=[0.0]"),
        ("+model.colour=1", "model.colour is not a config key"),
    ],
)
def test_the_summary_tool_rejects_what_training_rejects(
    override: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """In this process (its command line, one process: test_profile.py's bad-override test)."""
    from resnet_exp import summary

    code = summary.main([override])
    out = capsys.readouterr()
    assert_user_error(subprocess.CompletedProcess([override], code, out.out, out.err), named)
    assert out.err.startswith("error: ") and out.err.count("\n") == 1 and out.out == ""


def test_a_report_on_an_unparseable_summary_does_not_call_the_job_crashed(
    tmp_path: Path, finished: Path
) -> None:
    sweep = tmp_path / "sweep"
    shutil.copytree(finished, sweep / "0")
    (sweep / "0" / "summary.json").write_text('{"status": "compl')
    result = run_cli(str(sweep), "--mode", "disabled", module="resnet_exp.report", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = (sweep / "report.md").read_text()
    assert "crashed before writing it" not in report
    assert "summary.json cannot be parsed (JSONDecodeError" in report
    assert "status is unknown" in report


# -- data --


@pytest.mark.slow  # copies the real dataset, two CLI runs
def test_a_corrupt_label_byte_is_a_damaged_file_whatever_num_classes_says(
    tmp_path: Path, fmnist_root: Path
) -> None:
    root = tmp_path / "data"
    shutil.copytree(fmnist_root, root)
    (labels,) = root.glob("*/raw/train-labels-idx1-ubyte")
    data = bytearray(labels.read_bytes())
    data[8 + 7] = 200  # image 7's label (the idx header is 8 bytes)
    labels.write_bytes(bytes(data))
    for extra in ([], ["data.num_classes=201"]):
        result = run_cli(*small(root, *extra), cwd=tmp_path)
        assert_user_error(result, "training labels are damaged", "image 7 has label 200")
        assert "num_classes >=" not in result.stderr


@pytest.mark.slow
def test_more_threads_than_cores_are_capped_with_a_recorded_warning(
    tmp_path: Path, fmnist_root: Path
) -> None:
    cores = len(os.sched_getaffinity(0))
    run_dir = tmp_path / "run"
    result = run_cli(
        *small(fmnist_root, f"hydra.run.dir={run_dir}", "trainer.num_threads=1000"), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    warning = (
        f"trainer.num_threads=1000 is more than the {cores} CPU cores this process may use; "
        f"using {cores} threads."
    )
    assert warning in result.stdout
    assert summary_of(run_dir)["warnings"] == [warning]


def test_an_image_size_the_allocator_cannot_serve_is_one_paragraph(
    tmp_path: Path, fmnist_root: Path
) -> None:
    result = run_cli(*small(fmnist_root, "data.resize=100000"), cwd=tmp_path)
    assert_user_error(result, "out of memory", "data.resize=100000")


def test_an_unforeseen_error_is_one_line_pointing_at_its_traceback_in_the_log(
    tmp_path: Path, fmnist_root: Path
) -> None:
    faults = tmp_path / "faults"
    faults.mkdir()
    (faults / "sitecustomize.py").write_text(
        "from resnet_exp.training import loop\n"
        "def fit(self, rows=None):\n"
        "    raise RuntimeError('a bug nobody foresaw')\n"
        "loop.Trainer.fit = fit\n"
    )
    run_dir = tmp_path / "run"
    path = os.pathsep.join([str(faults), os.environ.get("PYTHONPATH", "")])
    result = run_cli(
        *small(fmnist_root, f"hydra.run.dir={run_dir}"), cwd=tmp_path, env={"PYTHONPATH": path}
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    log_file = next(run_dir.glob("*.log"))
    assert line == (
        f"error: unexpected RuntimeError: a bug nobody foresaw (traceback in {log_file})"
    )
    log_text = log_file.read_text()
    assert "Traceback (most recent call last)" in log_text and "a bug nobody foresaw" in log_text
    assert summary_of(run_dir)["status"] == "failed"


def test_ctrl_c_during_start_up_is_one_line_and_exit_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C before the run's own signal handler is in place (the preflight composes every job)."""
    import sys

    from resnet_exp import app
    from resnet_exp.hydra_glue import preflight

    def interrupted(args: list[str]) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(preflight, "preflight", interrupted)
    monkeypatch.setattr(sys, "argv", ["resnet_exp", "trainer.epochs=1"])
    with pytest.raises(SystemExit) as stopped:
        app.entry()
    assert stopped.value.code == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "interrupted by SIGINT during start-up, before training began."
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "point"), [(signal.SIGTERM, "job"), (signal.SIGHUP, "preflight")]
)
def test_sigterm_or_sighup_during_start_up_is_one_line_and_leaves_the_folder_as_it_was(
    tmp_path: Path, finished: Path, fmnist_root: Path, signum: int, point: str
) -> None:
    """Like Ctrl-C: before the run's own handlers are in place (``job``: Hydra has already
    rewritten ``.hydra/`` of the existing folder), one line and 128 + the signal's number."""
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = snapshot(run)
    process = start_cli(
        *small(fmnist_root, f"hydra.run.dir={run}", "trainer.epochs=2"),
        cwd=tmp_path,
        env=fault_env(sleep_at=point),
    )
    assert process.stderr is not None
    seen = []
    for line in process.stderr:  # until the process sleeps at `point`
        seen.append(line)
        if line.startswith("fault injection: sleeping"):
            break
    process.send_signal(signum)
    rest, err = process.communicate(timeout=120)
    lines = [x for x in [*seen, *err.splitlines()] if not x.startswith("fault injection:")]
    name = signal.Signals(signum).name
    assert process.returncode == 128 + signum, "".join(seen) + err
    assert [x.strip() for x in lines] == [
        f"terminated by {name} during start-up, before training began."
    ]
    assert snapshot(run) == before


@pytest.mark.slow
def test_any_failure_before_the_run_restarts_leaves_the_folder_byte_identical(
    tmp_path: Path, finished: Path, fmnist_root: Path
) -> None:
    """Members the issue does not name: an unforeseen exception after the data is read, and
    AdamW's betas of the wrong length (a ConfigIndexError before validation knew the length)."""
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = snapshot(run)
    fault = fault_env(raise_at="start")
    done = run_cli(*small(fmnist_root, f"hydra.run.dir={run}"), cwd=tmp_path,
                   env=fault)  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: unexpected RuntimeError: injected fault"), done.stderr
    assert "Traceback" not in done.stderr
    traceback_file = Path(lines[-1].split("(traceback in ")[1].rstrip(")"))
    assert traceback_file.parent != run and "Traceback" in traceback_file.read_text()
    assert snapshot(run) == before

    bad_betas = ["optimizer=adamw", "optimizer.betas=[0.9,0.99,0.5]", f"hydra.run.dir={run}"]
    done = run_cli(*small(fmnist_root, *bad_betas), cwd=tmp_path)
    assert done.returncode == 2 and "optimizer.betas=[0.9, 0.99, 0.5] has 3" in done.stderr
    assert snapshot(run) == before


@pytest.mark.slow
def test_a_failed_start_restores_only_its_own_files_and_never_reads_a_link_or_special_file(
    tmp_path: Path, finished: Path, fmnist_root: Path
) -> None:
    """Issue 31, classes 4 and 7: a run pointed at a non-empty folder (a finished run's files, a
    link to /proc/kmsg, a FIFO, another run's sub-folder) stops during start-up while a run
    starts in that sub-folder; the snapshot ends (reads no link or FIFO) and the clean-up leaves
    the neighbour's files alone."""
    run = tmp_path / "outputs"
    shutil.copytree(finished, run)
    (run / "k").symlink_to("/proc/kmsg")
    os.mkfifo(run / "fifo")
    os.mkfifo(tmp_path / "outside")
    (run / "out").symlink_to(tmp_path / "outside")
    before = snapshot(run)
    process = start_cli(*small(fmnist_root, f"hydra.run.dir={run}"), cwd=tmp_path,
                        env=fault_env(sleep_at="job"))  # fmt: skip
    assert process.stderr is not None
    for line in process.stderr:  # until Hydra has written this run's files and it sleeps
        if line.startswith("fault injection: sleeping"):
            break
    neighbour = {
        "A/.hydra/config.yaml": b"a: 1\n",
        "A/resnet_exp.log": b"A\n",
        "A/.writer.lock": b"",
    }
    for name, data in neighbour.items():
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_bytes(data)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert snapshot(run) == before | neighbour
    assert (run / "k").is_symlink() and (run / "fifo").is_fifo()
