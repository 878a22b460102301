"""Every single run gets a folder of its own, even when two start in the same second."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from resnet_exp.hydra_glue import folders as run_dir
from tests.cli import REPO, run_cli


@pytest.fixture(autouse=True)
def _fresh_claims(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_dir, "_claimed", {})
    monkeypatch.delenv("RANK", raising=False)


def test_first_claim_gets_the_path_and_keeps_it(tmp_path: Path) -> None:
    path = str(tmp_path / "outputs" / "2026-11-28" / "03-52-35")
    assert run_dir.fresh_dir(path) == path
    assert Path(path).is_dir()
    # Hydra may resolve hydra.run.dir again in the same process: same answer, no new folder.
    assert run_dir.fresh_dir(path) == path
    assert sorted(p.name for p in Path(path).parent.iterdir()) == ["03-52-35"]


def test_a_folder_taken_by_another_run_is_left_alone(tmp_path: Path) -> None:
    taken = tmp_path / "03-52-35"
    (taken / "checkpoints").mkdir(parents=True)
    (tmp_path / "03-52-35-2").mkdir()
    assert run_dir.fresh_dir(str(taken)) == str(tmp_path / "03-52-35-3")
    assert (tmp_path / "03-52-35-3").is_dir()


def test_torchrun_ranks_above_zero_follow_rank_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RANK", "1")
    path = str(tmp_path / "03-52-35")
    assert run_dir.fresh_dir(path) == path
    assert not Path(path).exists()  # rank 0 claims it; this rank makes nothing


def test_default_run_dir_uses_the_claiming_resolver() -> None:
    text = (REPO / "conf" / "config.yaml").read_text()
    assert "dir: ${resnet_exp.fresh_dir:outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}}" in text


@pytest.mark.slow
def test_two_runs_started_together_write_separate_records(
    tmp_path: Path, fmnist_root: Path
) -> None:
    # Both ask for the same folder, as two runs started in the same second do by default.
    args = [
        f"data.root={fmnist_root}",
        "data.train_subset=256",
        "data.test_subset=128",
        "data.val_size=0",
        "trainer.epochs=1",
        "trainer.progress=false",
        "logger=none",
        "hydra.run.dir=${resnet_exp.fresh_dir:outputs/same-second}",
    ]
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "resnet_exp", *args, f"seed={seed}"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for seed in (1, 2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    folders = sorted((tmp_path / "outputs").iterdir())
    assert [f.name for f in folders] == ["same-second", "same-second-2"]
    seeds = set()
    for folder in folders:
        overrides = (folder / ".hydra" / "overrides.yaml").read_text()
        seeds |= {line for line in overrides.splitlines() if "seed=" in line}
        assert (folder / "summary.json").exists()
        # One run's epochs per record: nothing appended by the other run.
        rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in rows if "epoch" in r] == [1]  # one epoch row: its own run
    assert seeds == {"- seed=1", "- seed=2"}


@pytest.mark.parametrize("explicit", [True, False], ids=["explicit", "default-resolver"])
def test_an_uncreatable_run_folder_is_one_clear_error(tmp_path: Path, explicit: bool) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    wanted = blocker / "run"
    value = str(wanted) if explicit else f"${{resnet_exp.fresh_dir:{wanted}}}"
    proc = run_cli(f"hydra.run.dir={value}", "trainer.epochs=1", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"error: cannot create the run folder '{wanted}'" in proc.stderr
    assert "hydra.run.dir=<folder>" in proc.stderr
    assert "Traceback" not in proc.stderr and "Error executing job" not in proc.stderr
    assert blocker.read_text() == "not a folder"  # nothing already there was touched
