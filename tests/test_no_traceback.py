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


# -- issue 31, class 3: interpolations are user input ---------------------------------------------

BAD_INTERPOLATIONS = [
    ("data.root=${oc.env:RESNET_EXP_NO_SUCH}", "data.root", "RESNET_EXP_NO_SUCH"),
    ("data.root=${nope}", "data.root", "'nope' not found"),
    ("model.depth=${resnet_exp.dataset:nosuch}", "model.depth", "missing 1 required"),
    ("data.in_channels=${resnet_exp.dataset:nosuch,channels}", "in_channels", "not a known"),
    ("seed=${resnet_exp.machine_keys:3}", "seed", "takes 0 positional"),
    ("data.mean=[${nope}]", "data.mean[0]", "'nope' not found"),
    ("hydra.run.dir=out/${oc.env:RESNET_EXP_NO_SUCH}", "hydra.run.dir", "RESNET_EXP_NO_SUCH"),
    ("hydra.job.name=${nope}", "hydra.job.name", "'nope' not found"),
]


FLAGS = [[], ["--multirun", "seed=0,1"], ["--cfg", "job"], ["-m", "seed=0,1", "--cfg", "job"]]
CASES = [(*case, flags) for case in BAD_INTERPOLATIONS[:3] for flags in FLAGS[1:]]


@pytest.mark.parametrize(
    ("override", "key", "reason", "flags"), [(*c, []) for c in BAD_INTERPOLATIONS] + CASES
)
def test_an_interpolation_that_cannot_resolve_is_one_paragraph_naming_its_key(
    override: str, key: str, reason: str, flags: list[str]
) -> None:
    command = parse_command([*flags, override])
    with pytest.raises(CommandError) as info:
        check_command(command, dry=command.multirun and "--cfg" in flags)
    message = str(info.value)
    assert f"{key}=" in message and reason in message and "cannot be resolved" in message
    assert "\n" not in message


@pytest.mark.slow
def test_a_bad_interpolation_through_the_cli_writes_nothing(tmp_path: Path) -> None:
    for args in (
        ["data.root=${oc.env:RESNET_EXP_NO_SUCH}"],
        ["-m", "seed=0,1", "data.root=${nope}"],
        ["--cfg", "job", "model.depth=${resnet_exp.dataset:nosuch}"],
    ):
        done = run_cli(*args, cwd=tmp_path)
        assert done.returncode == 2 and "cannot be resolved" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "outputs").exists()
