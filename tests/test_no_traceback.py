"""No traceback on any path, in any tool (issue 21, class 6; the sweep's failed-job lines are
issue 23's)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli import run_cli

from resnet_exp.hydra_glue.command import parse_command
from resnet_exp.hydra_glue.compose import compose
from resnet_exp.hydra_glue.preflight import CommandError, check_command


@pytest.mark.parametrize("override", ["data=null", "optimizer=NULL", "+scheduler=null"])
def test_a_group_set_to_null_is_one_paragraph_naming_its_options(override: str) -> None:
    with pytest.raises(CommandError) as info:
        check_command(parse_command([override]))
    assert "cannot be set to null" in str(info.value) and "\n" not in str(info.value)


def test_an_option_spelled_none_is_still_an_option() -> None:
    assert compose(["scheduler=none"]).scheduler is not None


def _broken_sweep(root: Path) -> Path:
    sweep = root / "broken"
    for job in ("a", "b", "c"):
        (sweep / job / ".hydra").mkdir(parents=True)
    (sweep / "a" / "summary.json").write_text("{{{")
    (sweep / "a" / ".hydra" / "overrides.yaml").write_text("- [unclosed")
    (sweep / "b" / ".hydra" / "config.yaml").write_text("garbage: [")
    (sweep / "b" / "summary.json").write_text("[1, 2]")
    (sweep / "b" / "metrics.jsonl").write_text('{"epoch": "x"}\n[1]\nnull\n')
    (sweep / "c" / "summary.json").write_text(json.dumps({"status": 7, "epochs": "many"}))
    (sweep / "multirun.yaml").write_text("hydra: [")
    return sweep


@pytest.mark.slow
def test_no_tool_prints_a_traceback_on_bad_input(tmp_path: Path) -> None:
    """Members the issue does not name: a launcher group and the summary tool's group set to
    null, damaged records for status and report, a file where a folder belongs."""
    sweep = _broken_sweep(tmp_path)
    calls = [
        ("resnet_exp", ["hydra/launcher=null", "logger=none"]),
        ("resnet_exp.summary", ["model=null"]),
        ("resnet_exp.status", [str(sweep)]),
        ("resnet_exp.report", [str(sweep)]),
        ("resnet_exp.status", [str(sweep / "a" / "summary.json")]),
        ("resnet_exp.report", [str(sweep / "b" / "metrics.jsonl")]),
        ("resnet_exp.status", [str(sweep), "--interval", "abc"]),
    ]
    for module, args in calls:
        done = run_cli(*args, cwd=tmp_path, module=module)
        assert "Traceback" not in done.stdout + done.stderr, (module, args, done.stderr)
        if module == "resnet_exp" or "null" in " ".join(args):
            assert done.returncode == 2 and "cannot be set to null" in done.stderr, done.stderr
    assert not (tmp_path / "outputs").exists()
