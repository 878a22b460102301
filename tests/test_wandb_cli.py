"""What a training run sends to W&B, read back from the offline run files it leaves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli import SPEC_EPOCH_KEYS, run_cli
from wandb_files import read_offline_run, read_offline_runs

from resnet_exp.tracking.names import sweep_id, wandb_names


def tiny(root: Path) -> list[str]:
    return [
        f"data.root={root}",
        "data.train_subset=256",
        "data.val_size=64",
        "data.test_subset=128",
        "logger.mode=offline",
    ]


@pytest.mark.slow
def test_offline_run_holds_config_history_summary_group_and_tags(
    tmp_path: Path, fmnist_root: Path
) -> None:
    result = run_cli(*tiny(fmnist_root), "trainer.epochs=2", "model/block=plain", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = next((tmp_path / "outputs").glob("*/*/summary.json")).parent
    summary = json.loads((run_dir / "summary.json").read_text())
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in records if "epoch" in r]  # epoch rows; per-step rows have no epoch
    run = read_offline_run(run_dir, include_internal=True)
    epochs = [h for h in run["history"] if "train/err" in h]
    steps = [h for h in run["history"] if "train_step/err" in h]

    assert run["project"] == "resnet-exp"
    assert run["config"]["model"]["depth"] == 20  # resolved, nested, plain values
    assert run["config"]["model"]["in_channels"] == 1  # the ${data.in_channels} interpolation
    assert run["config"]["optimizer"]["lr"] == 0.1
    assert len(epochs) == 2
    assert [h["_step"] for h in steps] == [r["step"] for r in records if "epoch" not in r]
    for logged, row in zip(epochs, rows):
        assert set(logged) >= SPEC_EPOCH_KEYS
        assert logged["train/err"] == pytest.approx(row["train/err"])
        assert logged["test/err"] == pytest.approx(row["test/err"])
    assert run["summary"]["status"] == "completed"
    assert run["summary"]["best/val/err"] == pytest.approx(summary["best"]["val/err"])
    assert run["summary"]["final/test/err"] == pytest.approx(rows[-1]["test/err"])
    assert set(run["tags"]) >= {"plain", "depth-20", "fashionmnist"}
    assert run["group"].endswith(f" @ {sweep_id(run_dir)}")  # a single run is its own sweep
    assert (run["name"], run["job_type"][:9]) == ("plain-20 (seed 0)", "plain-20 ")
    assert run["exit_code"] == 0
    assert f"wandb sync {run_dir}" in result.stdout + result.stderr


@pytest.mark.slow
def test_a_sweep_is_grouped_by_configuration_and_has_one_report_run(
    tmp_path: Path, fmnist_root: Path
) -> None:
    """SPEC §7: a configuration's seeds share a group, person's names, flat keys, the sweep as a
    tag and a key, one report run however often the report is built, none of wandb's chatter."""
    sweep = tmp_path / "sweep"
    result = run_cli(
        "--multirun", "model/block=plain,basic", "seed=1,2", *tiny(fmnist_root), "trainer.epochs=1",
        f"hydra.sweep.dir={sweep}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wandb:" not in result.stdout + result.stderr  # wandb's own lines: none
    for _ in range(2):
        again = run_cli(str(sweep), module="resnet_exp.report", cwd=tmp_path)
        assert again.returncode == 0, again.stderr[-3000:]
    runs = [read_offline_run(p.parent) for p in sweep.glob("*/summary.json")]
    assert sorted(r["name"] for r in runs) == [
        "ResNet-20 (seed 1)", "ResNet-20 (seed 2)", "plain-20 (seed 1)", "plain-20 (seed 2)",
    ]  # fmt: skip
    by_model = {name: [r for r in runs if r["name"].startswith(name)] for name in ("plain", "Res")}
    for same in by_model.values():  # seeds of one configuration: one group, one job type
        assert len({r["group"] for r in same}) == len({r["job_type"] for r in same}) == 1
    assert by_model["plain"][0]["group"] != by_model["Res"][0]["group"]
    assert {r["group"].split(" @ ")[1] for r in runs} == {sweep_id(sweep)}
    for run in runs:
        assert sum("train/err" in h for h in run["history"]) == 1  # no job logged into another's
        flat = {k: run["config"][k] for k in ("block", "residual", "depth", "family", "dataset")}
        assert flat == {"block": "plain" if run["name"][0] == "p" else "basic", "depth": 20,
                        "residual": run["name"][0] == "R", "family": "cifar",
                        "dataset": "fashionmnist"}  # fmt: skip
        assert run["config"]["seed"] == int(run["name"][-2])
        assert run["config"]["sweep"] == sweep_id(sweep) and sweep_id(sweep) in run["tags"]
    reports = [r for r in read_offline_runs(tmp_path / "wandb") if r["job_type"] == "report"]
    assert len(reports) == 3 and len({r["run_id"] for r in reports}) == 1  # 3 builds, 1 run
    assert reports[0]["config"]["sweep"] == sweep_id(sweep)


def test_a_configuration_has_one_job_type_however_its_model_was_written() -> None:
    model = {"block": "basic", "residual": True, "depth": 20}
    one, other = (
        wandb_names(model, 3, [preset, "seed=3"], [], '{"model.depth": 20}', "s")
        for preset in ("model=resnet20", "model/depth=20")
    )
    assert one == other
    assert one[0] == "ResNet-20 (seed 3)" and one[2] == f"{one[1]} @ s"


@pytest.mark.slow
def test_logger_none_starts_no_wandb_run_and_writes_nothing_outside_its_folder(
    tmp_path: Path, fmnist_root: Path
) -> None:
    """Issue 31 class 2: no W&B run (nor a report run at the sweep's end or a report build), even
    with a key set; nothing in the home folder (W&B's, matplotlib's caches)."""
    home, sweep = tmp_path / "home", tmp_path / "sweep"
    home.mkdir()
    env = {"HOME": str(home), "WANDB_API_KEY": "k" * 40, "WANDB_MODE": ""}
    tiny_none = [*tiny(fmnist_root)[:-1], "logger=none", "trainer.response_images=0"]
    result = run_cli("--multirun", "seed=0,1", *tiny_none, "trainer.epochs=1",
                     f"hydra.sweep.dir={sweep}", cwd=tmp_path, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = run_cli(str(sweep), module="resnet_exp.report", cwd=tmp_path, env=env)
    assert report.returncode == 0 and "W&B: off for this sweep" in report.stdout, report.stderr
    assert list(home.rglob("*")) == []
    assert not list(tmp_path.rglob("*.wandb")) and not list(tmp_path.rglob("wandb"))
    assert "wandb" not in (result.stderr + report.stderr).lower()


KEY, NETRC_KEY = "0123456789abcdef" * 2 + "feedbeef", "f00dcafe" * 5


@pytest.mark.slow
def test_a_configured_key_never_leaves_however_it_arrived(
    tmp_path: Path, fmnist_root: Path
) -> None:
    """Issue 31 class 1: interpolated into notes, typed into tags and group, kept in netrc."""
    (tmp_path / "netrc").write_text(f"machine api.wandb.ai login user password {NETRC_KEY}\n")
    env = {"WANDB_API_KEY": KEY, "NETRC": str(tmp_path / "netrc")}
    run = tmp_path / "run"
    result = run_cli(
        *tiny(fmnist_root), "trainer.epochs=1", "logger.notes=${oc.env:WANDB_API_KEY}",
        f"logger.tags=[{KEY}]", f"logger.group=g{NETRC_KEY}", f"hydra.run.dir={run}",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    secrets = (KEY.encode(), NETRC_KEY.encode())
    leaks = [p for p in run.rglob("*") if p.is_file() and any(s in p.read_bytes() for s in secrets)]
    assert leaks == [] and KEY not in result.stdout + result.stderr
    wandb_run = read_offline_run(run)
    assert (wandb_run["notes"], wandb_run["group"]) == ("***", "g***")
    assert "***" in wandb_run["tags"]
