"""Folders are what they claim (issue 21, class 10)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli import run_cli

from resnet_exp.hydra_glue.compose import compose
from resnet_exp.validation import InvalidConfig, validate


@pytest.mark.parametrize("root", ["", " "])
def test_an_empty_data_root_is_refused(root: str) -> None:
    with pytest.raises(InvalidConfig, match="data.root=.* is empty"):
        validate(compose([f"data.root='{root}'"]))


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_a_run_is_not_written_into_a_sweep_folder_nor_a_sweep_into_a_run_folder(
    tmp_path: Path,
) -> None:
    """Members the issue does not name: a sweep pointed at a run's folder, a run at a sweep that
    has not finished (only its multirun.yaml), an empty root given with quotes and a space."""
    sweep = tmp_path / "sweep"
    (sweep / "job-1234abcd" / ".hydra").mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "summary.json").write_text('{"status": "completed"}')
    before = {**_files(sweep), **_files(run)}

    done = run_cli("logger=none", f"hydra.run.dir={sweep}", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"hydra.run.dir={str(sweep)!r} is a sweep's folder" in done.stderr
    done = run_cli("--multirun", "seed=1,2", "logger=none", f"hydra.sweep.dir={run}", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"hydra.sweep.dir={str(run)!r} is a single run's folder" in done.stderr
    assert {**_files(sweep), **_files(run)} == before

    done = run_cli("data.root=' '", "logger=none", cwd=tmp_path)
    assert done.returncode == 2 and "data.root=' ' is empty" in done.stderr, done.stderr
    assert not (tmp_path / "outputs").exists()
