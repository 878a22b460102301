"""Sweep report: summary.csv, report.md (with a computed verdict), the figures, CLI, callback, W&B.

Fake sweeps are built in tmp_path with the run-record layout of docs/internals.md, so these tests
need neither training nor a network.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from hand_counts import cifar_flops, cifar_params

from resnet_exp.report.aggregate import CSV_COLUMNS, collect_runs
from resnet_exp.report.build import ReportError, build_report, log_report_to_wandb
from resnet_exp.report.figures import FIGURES
from resnet_exp.report.markdown import render_report
from resnet_exp.report.plots import plot_degradation, plot_gradients
from resnet_exp.report.study import SUMMARY_COLUMNS, write_summary_csv
from resnet_exp.tracking.names import sweep_id
from resnet_exp.tracking.record import JOB_ERROR_JSON as JOB_ERROR

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EPOCHS = 6
DATASET = "fashionmnist"

# (block, depth) -> final training error %. Plain rises with depth, residual falls (the paper's
# story).
DEGRADING = {("plain", 20): 8.1, ("plain", 32): 12.3, ("basic", 20): 7.4, ("basic", 32): 5.9}
# The opposite: plain falls with depth, residual rises.
OPPOSITE = {("plain", 20): 12.3, ("plain", 32): 8.1, ("basic", 20): 5.9, ("basic", 32): 7.4}


# -------------------------------------------------------------------------------------------------
# Fake run records


def metrics_rows(
    final_train: float, depth: int, residual: bool, epochs: int = EPOCHS
) -> list[dict]:
    """Per-epoch rows whose training error decays to `final_train` (the last row's value
    exactly)."""
    rows = []
    for e in range(1, epochs + 1):
        frac = (epochs - e) / max(epochs - 1, 1)  # 1 at the first epoch, 0 at the last
        train = round(final_train + 50.0 * frac**2, 4)
        val = round(train + 2.0 + 0.1 * e, 4)
        # vanishing gradients: deep plain nets get little gradient in early stages at the start
        decay = 1.0 if residual else 0.25 ** (depth / 20)
        grads = {
            "grad_norm/stem": round(0.8 * decay * (1 + 0.1 * e), 6),
            "grad_norm/stage1": round(0.9 * decay**0.66 * (1 + 0.1 * e), 6),
            "grad_norm/stage2": round(1.0 * decay**0.33 * (1 + 0.1 * e), 6),
            "grad_norm/stage3": round(1.2 * (1 + 0.1 * e), 6),
            "grad_norm/head": round(1.5 * (1 + 0.1 * e), 6),
        }
        rows.append(
            {
                "epoch": e,
                "step": e * 430,
                "train/loss": round(train / 30, 4),
                "train/err": train,
                "val/loss": round(val / 30, 4),
                "val/err": val,
                "test/loss": round(val / 29, 4),
                "test/err": round(val + 0.3, 4),
                "lr": 0.1 if e <= epochs // 2 else 0.01,
                "time/epoch_s": 10.0 + depth / 10,
                "throughput/img_s": 5000.0 - depth * 10,
                **grads,
            }
        )
    return rows


def write_job(
    sweep: Path,
    num: int,
    block: str,
    depth: int,
    final_train: float | None = None,
    *,
    status: str = "completed",
    error: str | None = None,
    rows: list[dict] | None = None,
    summary: bool = True,
    torn: bool = False,
    counts: tuple[int, int] | None = None,
) -> Path:
    """One job directory as the training side writes it (.hydra/, metrics.jsonl, summary.json)."""
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    residual = block not in ("plain", "plain_bottleneck")
    overrides = [f"model/depth={depth}", f"model/block={block}"]
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    config = {
        "seed": 0,
        "model": {
            "_target_": "resnet_exp.models.ResNet",
            "block": {"_target_": "hydra.utils.get_class", "path": f"resnet_exp.models.{block}"},
            "depth": depth,
            "family": "cifar",
            "shortcut": "A",
            "in_channels": "${data.in_channels}",
        },
        "data": {"name": DATASET, "in_channels": 1},
        "trainer": {"epochs": EPOCHS},
        "logger": {"mode": "offline", "project": "resnet-exp-test"},
    }
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    if rows is None:
        rows = metrics_rows(final_train, depth, residual) if final_train is not None else []
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if torn:
        text += '{"epoch": 99, "train/err": 1'  # killed mid-write: no closing brace, no newline
    (job / "metrics.jsonl").write_text(text)
    if summary:
        finite = [r for r in rows if math.isfinite(r.get("val/err", math.nan))]
        best = min(finite, key=lambda r: r["val/err"]) if finite else None
        record = {
            "status": status,
            "error": error,
            "model": {
                "block": block,
                "residual": residual,
                "depth": depth,
                "family": "cifar",
                "shortcut": "A",
                "params": counts[0] if counts else 272474 + (depth - 20) * 9_000,
                "flops": counts[1] if counts else 40_000_000 + (depth - 20) * 2_000_000,
            },
            "dataset": DATASET,
            "seed": 0,
            "overrides": overrides,
            "job": ",".join(overrides),
            "epochs_planned": EPOCHS,
            "epochs": len(rows),
            "steps": len(rows) * 430,
            "final": rows[-1] if rows else None,
            "best": best,
            "wall_time_s": 61.5 + depth,
            "wandb": {"mode": "disabled", "run_id": None, "dir": None, "sync": None},
        }
        (job / "summary.json").write_text(json.dumps(record, indent=2))
    return job


def make_sweep(root: Path, finals: dict[tuple[str, int], float]) -> Path:
    """A Hydra-like sweep dir `<root>/<date>/<time>/<num>/`, one job per (block, depth)."""
    sweep = root / "multirun" / "2026-11-27" / "23-40-01"
    sweep.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"logger": {"mode": "disabled"}}))
    for num, ((block, depth), final) in enumerate(finals.items()):
        write_job(sweep, num, block, depth, final)
    return sweep


@pytest.fixture()
def sweep(tmp_path: Path) -> Path:
    return make_sweep(tmp_path, DEGRADING)


def read_csv(path: Path) -> list[dict[str, str]]:
    """The per-run rows of summary.csv (the per-configuration rows come first)."""
    with open(path, newline="") as handle:
        return [r for r in csv.DictReader(handle) if r["row"] == "run"]


def assert_png(path: Path) -> None:
    """A real PNG: magic bytes, intact chunk CRCs, and matplotlib can decode it to pixels."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    pos = 8
    kinds = []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc
        kinds.append(kind)
        pos += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    import matplotlib.image as mpimg

    pixels = mpimg.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 400
    assert pixels.std() > 0.01  # not a blank canvas


# -------------------------------------------------------------------------------------------------
# Aggregation and summary.csv


def real_counts(block: str, depth: int) -> tuple[int, int]:
    """Parameters and FLOPs of the net such a job trains (as app.py records them)."""
    from resnet_exp.models import BasicBlock, PlainBlock, ResNet
    from resnet_exp.models.profile import count_flops

    cls = PlainBlock if block == "plain" else BasicBlock
    model = ResNet(cls, depth, family="cifar", in_channels=1, num_classes=10, shortcut="A")
    return sum(p.numel() for p in model.parameters()), count_flops(model, (1, 28, 28))


def test_summary_csv_matches_run_records(tmp_path: Path) -> None:
    """Every number is recomputed here from the job's metrics.jsonl rows (best = the row of lowest
    validation error, which is not the last: the runs overfit at the end) or from hand counts of
    the network, never read back from summary.json."""
    sweep = tmp_path / "sweep"
    for num, ((block, depth), final) in enumerate(DEGRADING.items()):
        rows = metrics_rows(final, depth, block != "plain")
        rows[-1]["val/err"] += 5.0  # overfitting in the last epoch
        rows[-1]["test/err"] += 5.0
        write_job(sweep, num, block, depth, rows=rows, counts=real_counts(block, depth))
    result = build_report(sweep)
    rows = read_csv(result.paths["summary_csv"])
    assert tuple(rows[0]) == SUMMARY_COLUMNS and set(CSV_COLUMNS) <= set(rows[0])
    # plain first, then residual; by depth
    assert [(r["block"], r["depth"]) for r in rows] == [
        ("plain", "20"),
        ("plain", "32"),
        ("basic", "20"),
        ("basic", "32"),
    ]
    for row in rows:
        num = next(n for n, key in enumerate(DEGRADING) if key == (row["block"], int(row["depth"])))
        block, depth = row["block"], int(row["depth"])
        metrics = [json.loads(line) for line in (sweep / str(num) / "metrics.jsonl").open()]
        best = min(metrics, key=lambda m: m["val/err"])
        assert best["epoch"] == EPOCHS - 1, "the best epoch is not the last"
        assert row["job"] == f"model/depth={depth},model/block={block}"
        assert row["residual"] == str(block != "plain").lower()
        assert int(row["params"]) == cifar_params(depth)
        assert int(row["flops"]) == cifar_flops(depth)
        assert row["shortcut"] == "A"
        assert int(row["epochs"]) == len(metrics) == EPOCHS
        assert float(row["final_train_err"]) == metrics[-1]["train/err"]
        assert float(row["final_train_err"]) == DEGRADING[(block, depth)]
        assert float(row["best_val_err"]) == best["val/err"]
        assert float(row["test_err_at_best_val"]) == best["test/err"]
        assert float(row["test_err_at_best_val"]) != metrics[-1]["test/err"]
        assert float(row["final_test_err"]) == metrics[-1]["test/err"]
        assert float(row["wall_time_s"]) == 61.5 + depth  # what the job's run took
        assert row["status"] == "completed"


def test_torn_metrics_line_is_skipped(tmp_path: Path) -> None:
    job = write_job(tmp_path, 0, "plain", 20, 8.1, status="running", summary=True, torn=True)
    # status 'running' = killed job: reported as incomplete, numbers recomputed from metrics
    (run,) = collect_runs(tmp_path)
    assert run.job_dir == job and run.skipped_lines == 1
    assert len(run.metrics) == EPOCHS and run.metrics[-1]["epoch"] == EPOCHS
    assert run.status == "incomplete" and run.epochs == EPOCHS
    assert run.final_train_err == 8.1


def test_failed_missing_and_diverged_jobs_are_marked(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_job(sweep, 0, "plain", 20, 8.1)
    write_job(sweep, 1, "basic", 20, 7.4)
    write_job(
        sweep,
        2,
        "plain",
        56,
        rows=[],
        status="failed",
        error="RuntimeError: CUDA out of memory while allocating 2.00 GiB",
    )
    write_job(sweep, 3, "basic", 32, summary=False)  # crashed before writing summary.json
    (sweep / "3" / JOB_ERROR).write_text(
        json.dumps({"type": "UserError", "message": "data.root 'nowhere' has no fashionmnist"})
    )
    write_job(sweep, 4, "plain", 32, summary=False)  # crashed, and no callback note either
    diverged_rows = metrics_rows(9.0, 44, False, epochs=3)
    diverged_rows[-1].update({"train/loss": math.nan, "train/err": 90.0, "test/err": 90.0})
    write_job(
        sweep,
        5,
        "plain",
        44,
        rows=diverged_rows,
        status="diverged",
        error="loss became NaN at epoch 3 step 1021",
    )

    result = build_report(sweep)
    by_dir = {r.name: r for r in result.runs}
    assert by_dir["2"].status == "failed" and "out of memory" in by_dir["2"].error
    assert by_dir["3"].status == "failed" and "has no fashionmnist" in by_dir["3"].error
    assert by_dir["4"].status == "failed" and "summary.json" in by_dir["4"].error
    # fields of summary-less jobs come from .hydra/config.yaml + overrides.yaml
    assert (by_dir["3"].block, by_dir["3"].depth, by_dir["3"].residual) == ("basic", 32, True)
    assert by_dir["4"].job == "model/depth=32,model/block=plain"
    assert by_dir["4"].dataset == DATASET and by_dir["4"].params is None
    assert by_dir["5"].status == "diverged"

    rows = read_csv(result.paths["summary_csv"])
    status = {(r["block"], r["depth"]): r["status"] for r in rows}
    assert status == {
        ("plain", "20"): "completed",
        ("plain", "32"): "failed",
        ("plain", "44"): "diverged",
        ("plain", "56"): "failed",
        ("basic", "20"): "completed",
        ("basic", "32"): "failed",
    }
    assert next(r for r in rows if r["depth"] == "32" and r["block"] == "plain")["params"] == ""

    md = result.paths["report_md"].read_text()
    assert "**FAILED**: RuntimeError: CUDA out of memory" in md
    assert "**FAILED**: UserError: data.root 'nowhere' has no fashionmnist" in md
    assert "**DIVERGED**: loss became NaN at epoch 3 step 1021" in md
    # only one completed depth per family: the verdict hedges instead of guessing
    assert "only depth 20 completed" in md and "no verdict" in md
    assert "Not counted: plain-32 failed, plain-44 diverged, plain-56 failed." in md
    for png in ("degradation_png", "gradients_png"):
        assert_png(result.paths[png])
    # the diverged run is plotted up to where it blew up; the failed jobs without epochs are not
    assert set(result.plotted["degradation"]) == {"plain-20", "plain-44", "ResNet-20"}


def test_all_failed_sweep_still_writes_everything(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_job(sweep, 0, "plain", 20, rows=[], status="failed", error="boom")
    write_job(sweep, 1, "basic", 20, summary=False)
    result = build_report(sweep)
    assert result.plotted == {"degradation": {}, "gradients": {}, "responses": {}}
    for png in ("degradation_png", "gradients_png"):
        assert result.paths[png].read_bytes()[:8] == PNG_MAGIC
    md = result.paths["report_md"].read_text()
    assert "2 failed" in md and "no completed runs" in md and "**Inconclusive**" in md


def test_shared_files_show_no_absolute_path(tmp_path: Path) -> None:
    """report.md and .html name files relative to the sweep, or from ~ (issue 31, class 13)."""
    sweep = make_sweep(tmp_path, DEGRADING)
    where = f"cannot open {sweep.resolve()}/9/data.bin (see {Path.home()}/notes)"
    job = write_job(sweep, 9, "plain", 56, rows=[], status="failed", error=where)
    (job / "run.log").write_text(f"run dir {job.resolve()}\nboom\n")
    result = build_report(sweep)
    md, page = (result.paths[k].read_text() for k in ("report_md", "report_html"))
    assert "cannot open 9/data.bin (see ~/notes)" in md and "run dir 9" in page
    for text in (md, page):
        assert str(tmp_path.resolve()) not in text and str(Path.home()) + "/" not in text


# -------------------------------------------------------------------------------------------------
# Verdict


def test_report_rows_and_degradation_verdict(sweep: Path) -> None:
    result = build_report(sweep)
    md = result.paths["report_md"].read_text()
    runs = {(r.block, r.depth): r for r in result.runs}
    for (block, depth), final in DEGRADING.items():
        label = f"{'plain' if block == 'plain' else 'ResNet'}-{depth}"
        row = next(line for line in md.splitlines() if line.startswith(f"| {label} |"))
        run = runs[(block, depth)]
        assert f"| {block} | {depth} | A |" in row
        assert f"| {final:.2f}% |" in row
        assert f"| {run.best_val_err:.2f}% | {run.test_err_at_best_val:.2f}% |" in row
        assert f"| {EPOCHS}/{EPOCHS} |" in row and row.endswith("| completed |")
    # one seed per configuration: numbers stated, verdict provisional
    assert (
        "**plain**: depth 20 → 32: 8.10% → 12.30% mean final training error (n = 1 seed per "
        "depth); depth effect +4.20 pp — seed noise unknown" in md
    )
    assert "**residual**: depth 20 → 32: 7.40% → 5.90% mean final training error" in md
    assert "depth effect -1.50 pp" in md
    assert "**Provisional (one seed per configuration, so the seed noise is unknown)**" in md
    assert "![" in md and "(degradation.png)" in md and "(gradients.png)" in md


def test_opposite_numbers_give_opposite_verdict(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path, OPPOSITE)
    md = build_report(sweep).paths["report_md"].read_text()
    assert "**plain**: depth 20 → 32: 12.30% → 8.10%" in md and "effect -4.20 pp" in md
    assert "**residual**: depth 20 → 32: 5.90% → 7.40%" in md and "effect +1.50 pp" in md


# -------------------------------------------------------------------------------------------------
# Figures


def test_plots_return_the_metrics(sweep: Path, tmp_path: Path) -> None:
    runs = collect_runs(sweep)
    out = tmp_path / "figs"
    data = plot_degradation(runs, out / "deg.png", DATASET)
    assert set(data) == {"plain-20", "plain-32", "ResNet-20", "ResNet-32"}
    for run in runs:
        label = f"{'ResNet' if run.residual else 'plain'}-{run.depth}"
        # no per-step rows in these records: training error at epoch ends, x = iterations
        assert data[label]["train"]["x"] == [m["step"] for m in run.metrics]
        assert data[label]["train"]["mean"] == [m["train/err"] for m in run.metrics]
        assert data[label]["test"]["x"] == [m["step"] for m in run.metrics]
        assert data[label]["test"]["mean"] == [m["test/err"] for m in run.metrics]
    assert_png(out / "deg.png")

    grads = plot_gradients(runs, out / "grad.png")
    assert set(grads) == set(data)
    for run in runs:
        label = f"{'ResNet' if run.residual else 'plain'}-{run.depth}"
        entry = grads[label]
        assert entry["x"] == ["stem", "stage1", "stage2", "stage3", "head"]
        assert entry["first"] == [run.metrics[0][f"grad_norm/{k}"] for k in entry["x"]]
        assert entry["last"] == [run.metrics[-1][f"grad_norm/{k}"] for k in entry["x"]]
        assert (entry["first_epoch"], entry["last_epoch"]) == (1, EPOCHS)
    assert_png(out / "grad.png")


def test_plots_skip_zero_epoch_runs_and_label_clashes(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_job(sweep, 0, "plain", 20, rows=[], status="failed", error="x")
    write_job(sweep, 1, "basic", 20, 7.0)
    write_job(sweep, 2, "preact", 20, 6.0)
    runs = collect_runs(sweep)
    data = plot_degradation(runs, tmp_path / "d.png")
    assert set(data) == {"ResNet-20 (basic)", "ResNet-20 (preact)"}
    assert set(plot_gradients(runs, tmp_path / "g.png")) == set(data)
    assert_png(tmp_path / "d.png")


def test_gradients_are_a_mean_with_a_band_over_seeds_in_colours_per_family(tmp_path: Path) -> None:
    """Issue 29 item 7: one line per configuration, its band the seeds' min to max; plain-20 and
    ResNet-20 never share a colour."""
    from resnet_exp.report.plots import kind_colours

    sweep = tmp_path / "sweep"
    for num, (block, final) in enumerate([("plain", 8.0), ("plain", 9.0), ("basic", 7.0)]):
        job = write_job(sweep, num, block, 20, final)
        config = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
        (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump({**config, "seed": num}))
    runs = collect_runs(sweep)
    grads = plot_gradients(runs, tmp_path / "g.png")
    assert set(grads) == {"plain-20", "ResNet-20"}
    plain = [r for r in runs if not r.residual]
    stem = [r.metrics[0]["grad_norm/stem"] for r in plain]
    entry = grads["plain-20"]
    assert entry["n"] == 2 and entry["first"][0] == pytest.approx(sum(stem) / 2)
    assert (entry["first_band"][0][0], entry["first_band"][1][0]) == (min(stem), max(stem))
    colours = kind_colours(runs)
    assert len(set(colours.values())) == len(colours) == 2
    assert "bands span their min to max" in FIGURES[0].caption(runs)


# -------------------------------------------------------------------------------------------------
# CLI, callback, W&B


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "resnet_exp.report", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_cli_rebuilds_identical_files(sweep: Path) -> None:
    result = build_report(sweep)
    before = {k: result.paths[k].read_bytes() for k in ("summary_csv", "report_md")}
    for key in before:
        result.paths[key].unlink()
    proc = run_cli(str(sweep), "--no-wandb")
    assert proc.returncode == 0, proc.stderr
    assert {k: result.paths[k].read_bytes() for k in before} == before
    assert "plain-20" in proc.stdout and "ResNet-32" in proc.stdout
    assert str(result.paths["report_md"]) in proc.stdout
    assert not list(sweep.glob(".*.tmp")), "temp files left behind"


@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_cli_bad_directory_exits_2(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "nope"
    if kind == "empty":
        (target / "stray").mkdir(parents=True)
    proc = run_cli(str(target))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    expected = "does not exist" if kind == "missing" else "no runs found"
    assert proc.stderr.startswith("error: Cannot build a sweep report") and expected in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    with pytest.raises(ReportError):
        build_report(target)


def _fake_hydra_config(sweep: Path, job_dir: Path, mode: str = "MULTIRUN", **extra: Any):
    from omegaconf import OmegaConf

    return OmegaConf.create(
        {
            "hydra": {
                "mode": mode,
                "sweep": {"dir": str(sweep)},
                "runtime": {"output_dir": str(job_dir), "cwd": str(sweep.parent)},
            },
            **extra,
        }
    )


def test_callback_writes_report_and_swallows_errors(
    sweep: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from hydra.core.utils import JobReturn, JobStatus
    from hydra.types import RunMode

    from resnet_exp.report.callback import ReportCallback

    callback = ReportCallback()
    # a job that raised before writing summary.json: its error is kept for the report
    crashed = sweep / "4"
    (crashed / ".hydra").mkdir(parents=True)
    ret = JobReturn(status=JobStatus.FAILED, _return_value=ValueError("bad lr: -0.1"))
    config = _fake_hydra_config(sweep, crashed)
    config.hydra.mode = RunMode.MULTIRUN  # what Hydra really stores
    callback.on_job_end(config, ret)
    assert json.loads((crashed / JOB_ERROR).read_text())["message"] == "bad lr: -0.1"
    md = (sweep / "report.md").read_text()
    assert "**FAILED**: ValueError: bad lr: -0.1" in md
    assert (sweep / "summary.csv").exists() and (sweep / "degradation.png").exists()

    # RUN mode: nothing to do
    single = tmp_path / "single"
    single.mkdir()
    run_cfg = _fake_hydra_config(single, single, mode="RUN")
    callback.on_job_end(run_cfg, JobReturn(status=JobStatus.COMPLETED))
    assert not (single / "report.md").exists()

    # errors are logged, never raised
    broken = _fake_hydra_config(tmp_path / "no-such-sweep", tmp_path / "no-such-sweep" / "0")
    with caplog.at_level("WARNING", logger="resnet_exp.report"):
        callback.on_job_end(broken, JobReturn(status=JobStatus.COMPLETED))
        callback.on_job_end(None, None)  # type: ignore[arg-type]
        callback.on_multirun_end(broken)
    assert sum("sweep report" in r.getMessage() for r in caplog.records) == 3


def test_callback_multirun_end_skips_wandb_when_disabled(
    sweep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resnet_exp.report import build as build_module
    from resnet_exp.report.callback import ReportCallback

    calls: list[Any] = []
    built: list[Path] = []
    monkeypatch.setattr(build_module, "log_report_to_wandb", lambda *a, **k: calls.append(k))
    monkeypatch.setattr(
        build_module,
        "build_report",
        lambda d: built.append(d) or build_module.ReportResult({"report_md": d / "report.md"}, []),
    )
    for logger in ({"mode": "disabled"}, {"_target_": "x.NullLogger"}):
        ReportCallback().on_multirun_end(_fake_hydra_config(sweep, sweep, logger=logger))
    assert calls == [] and built == [sweep, sweep]
    ReportCallback().on_multirun_end(
        _fake_hydra_config(sweep, sweep, logger={"mode": "offline", "project": "p", "group": "g"})
    )
    assert [(c["mode"], c["project"], c["group"]) for c in calls] == [("offline", "p", "g")]
    ReportCallback(wandb=False).on_multirun_end(
        _fake_hydra_config(sweep, sweep, logger={"mode": "offline"})
    )
    assert len(calls) == 1 and len(built) == 4


def test_a_sweep_ends_with_its_verdict_table_and_report_path(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 29 item 3: the last lines are the verdict, the table (80 columns) and the path."""
    from resnet_exp.report.callback import ReportCallback

    sweep = make_sweep(tmp_path, DEGRADING)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: the table still fits 80
    ReportCallback(wandb=False).on_multirun_end(_fake_hydra_config(sweep, sweep))
    lines = capsys.readouterr().out.rstrip("\n").splitlines()
    assert lines[-1] == "report: multirun/2026-11-27/23-40-01/report.md (and report.html beside it)"
    start = lines.index(next(line for line in lines if line.startswith("configuration ")))
    table = lines[start : start + 5]
    assert [row.split()[0] for row in table] == [
        "configuration", "plain-20", "plain-32", "ResNet-20", "ResNet-32"
    ]  # fmt: skip
    assert table[1].split()[1:] == ["1/1", "8.10%", "10.70%", "11.00%"]
    assert all(len(line) <= 80 for line in lines[start:])
    verdict = " ".join(lines[:start])
    assert verdict.strip().startswith("Provisional (one seed per configuration")
    assert "plain-32 ended with higher final training error than plain-20" in verdict


@pytest.mark.parametrize(
    "deep", [0, 1]
)  # a sweep path that fits the first line, one that would not
def test_cli_prints_what_a_sweep_prints_at_its_end(tmp_path: Path, deep: int) -> None:
    short = Path(tempfile.mkdtemp(dir="/tmp", prefix="s"))  # the report CLI runs in the repo
    sweep = make_sweep(short if not deep else tmp_path / ("d" * 40), DEGRADING)
    proc = run_cli(str(sweep), "--no-wandb", env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.rstrip("\n").splitlines()
    wrote = lines.pop(0)
    if deep:  # the path on a line of its own, not past column 80 after the words
        assert wrote == "rebuilt the report in" and lines.pop(0) == f"  {sweep}"
    assert wrote.endswith(f"in {sweep}") or deep
    assert len(wrote) <= 80
    assert lines[-1] == f"report: {sweep / 'report.md'} (and report.html beside it)"
    assert any(line.startswith("Provisional (one seed per configuration") for line in lines)
    assert any(line.split()[:2] == ["ResNet-32", "1/1"] for line in lines)
    assert max(map(len, lines[:-1])) <= 80  # all but the last line, naming a path
    shutil.rmtree(short)


def test_sweep_id_is_stable_and_unique(tmp_path: Path) -> None:
    a = tmp_path / "x" / "2026-11-27" / "23-40-01"
    b = tmp_path / "y" / "2026-11-27" / "23-40-01"
    assert sweep_id(a) == sweep_id(str(a)) == sweep_id(a / ".." / a.name)
    assert sweep_id(a).startswith("2026-11-27_23-40-01_") and len(sweep_id(a)) == 26
    assert sweep_id(a) != sweep_id(b)


def _wandb_records(path: Path) -> list[Any]:
    """Decode a .wandb transaction log (LevelDB log format, 32 KiB blocks, 7-byte record
    headers)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, records, pending = 7, 32768, [], b""
    while pos + 7 <= len(data):
        room = block - pos % block
        if room < 7:
            pos += room
            continue
        length, kind = struct.unpack("<HB", data[pos + 4 : pos + 7])
        if pos + 7 + length > len(data):  # still being written
            break
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            break
        pending += chunk
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
        elif kind == 2:  # FIRST
            pending = chunk
    return records


def test_log_report_to_wandb_offline(sweep: Path, tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("wandb")
    wandb_dir = tmp_path / "wandb-dir"
    wandb_dir.mkdir()
    monkeypatch.setenv("WANDB_DIR", str(wandb_dir))
    monkeypatch.setenv("WANDB_SILENT", "true")
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_RUN_ID", "WANDB_RUN_GROUP"):
        monkeypatch.delenv(var, raising=False)
    result = build_report(sweep)
    info = log_report_to_wandb(sweep, result.runs, project="resnet-exp-test", mode="offline")
    assert info is not None and info["mode"] == "offline" and info["sync"].startswith("wandb sync")
    files = list(wandb_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1 and Path(info["dir"]) == files[0].parent
    # wandb-core may still be flushing the transaction log after finish() returns: wait for its end
    deadline = time.monotonic() + 20
    while True:
        records = _wandb_records(files[0])
        kinds = [r.WhichOneof("record_type") for r in records]
        if "exit" in kinds or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.run_group == sweep_id(sweep)
    assert run.job_type == "report" and run.display_name == "report"
    assert run.project == "resnet-exp-test"
    history = [r.history for r in records if r.WhichOneof("record_type") == "history"]
    keys = {item.key or item.nested_key[0] for h in history for item in h.item}
    assert {"summary_table", "degradation", "gradients"} <= keys
    (table_file,) = files[0].parent.glob("files/media/table/summary_table_*.table.json")
    table = json.loads(table_file.read_text())
    assert tuple(table["columns"]) == CSV_COLUMNS
    csv_rows = read_csv(result.paths["summary_csv"])
    assert [str(r[0]) for r in table["data"]] == [r["job"] for r in csv_rows]
    assert [r[8] for r in table["data"]] == [float(r["final_train_err"]) for r in csv_rows]
    media = list(files[0].parent.glob("files/media/images/degradation_*.png"))
    assert media and media[0].read_bytes()[:8] == PNG_MAGIC


def test_report_run_uses_the_training_runs_wandb_client(
    sweep: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The report run starts like a training run: with a key and a server that answers, a failed
    online init is one warning and an offline run, and the key on the command line that started it
    (a Hydra callback runs in the sweep's process) never reaches its files."""
    wandb = pytest.importorskip("wandb")
    from resnet_exp.tracking import wandb_client
    from resnet_exp.tracking.wandb_reader import is_complete

    key = "resnetexpfakekey0123456789abcdef01234567"  # well-formed, unusable
    wandb_dir = tmp_path / "wandb-dir"  # passed as `dir`: wandb reads WANDB_DIR once per process
    monkeypatch.setenv("WANDB_SILENT", "true")
    for var in ("WANDB_MODE", "WANDB_RUN_ID", "WANDB_RUN_GROUP"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_API_KEY", key)
    monkeypatch.setattr(wandb_client, "_probe_server", lambda url, timeout: None)
    monkeypatch.setattr(sys, "argv", ["resnet_exp", f"+logger.api_key={key}", "--multirun"])
    real_init, modes = wandb.init, []

    def init(*args: Any, **kwargs: Any) -> Any:
        modes.append(kwargs["mode"])
        if kwargs["mode"] == "online":
            raise wandb.errors.CommError("Timed out initializing run")
        return real_init(*args, **kwargs)

    monkeypatch.setattr(wandb, "init", init)
    result = build_report(sweep)
    caplog.set_level(logging.INFO, logger="resnet_exp")
    info = log_report_to_wandb(
        sweep, result.runs, project="resnet-exp-test", mode="online", dir=wandb_dir
    )
    assert modes == ["online", "offline"]
    assert info is not None and info["mode"] == "offline" and info["sync"].startswith("wandb sync")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "W&B online init failed (Timed out initializing run); logging the report offline instead."
    ]
    (run_file,) = wandb_dir.glob("wandb/offline-run-*/run-*.wandb")
    deadline = time.monotonic() + 20
    while not is_complete(run_file) and time.monotonic() < deadline:
        time.sleep(0.1)
    leaks = [p for p in wandb_dir.rglob("*") if p.is_file() and key.encode() in p.read_bytes()]
    assert not leaks, f"API key written to {leaks}"


def test_markdown_is_deterministic(sweep: Path) -> None:
    runs = collect_runs(sweep)
    assert render_report(runs, sweep) == render_report(list(reversed(runs)), sweep)
    write_summary_csv(runs, sweep / "a.csv")
    write_summary_csv(list(reversed(runs)), sweep / "b.csv")
    assert (sweep / "a.csv").read_bytes() == (sweep / "b.csv").read_bytes()


HYDRA_APP = """
import json, sys, tempfile
from pathlib import Path
import hydra
from hydra.core.hydra_config import HydraConfig

sys.path.insert(0, {tests!r})
from test_report import DEGRADING, metrics_rows, write_job


@hydra.main(version_base="1.3", config_path=".", config_name="config")
def main(cfg):
    if (cfg.model.block, cfg.model.depth) == ("basic", 32):
        raise ValueError("the fake trainer refuses ResNet-32")
    out = Path(HydraConfig.get().runtime.output_dir)
    final = DEGRADING[(cfg.model.block, cfg.model.depth)]
    # the fake trainer writes its records into Hydra's own job dir (which already holds .hydra/)
    tmp = Path(tempfile.mkdtemp())
    write_job(tmp, 0, cfg.model.block, cfg.model.depth, final)
    for name in ("metrics.jsonl", "summary.json"):
        (tmp / "0" / name).replace(out / name)


if __name__ == "__main__":
    main()
"""


@pytest.mark.slow
def test_callback_in_a_real_hydra_multirun(tmp_path: Path) -> None:
    """A real --multirun with one failing job: Hydra skips on_multirun_end, the report still
    appears."""
    (tmp_path / "app.py").write_text(HYDRA_APP.format(tests=str(Path(__file__).parent)))
    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "model": {"block": "plain", "depth": 20},
                "data": {"name": DATASET},
                "logger": {"mode": "disabled"},
                "hydra": {
                    "sweep": {"dir": "multirun/2026-11-27/23-40-01", "subdir": "${hydra.job.num}"},
                    "callbacks": {
                        "report": {"_target_": "resnet_exp.report.callback.ReportCallback"}
                    },
                },
            }
        )
    )
    proc = subprocess.run(
        [sys.executable, "app.py", "--multirun", "model.block=plain,basic", "model.depth=20,32"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode != 0 and "the fake trainer refuses ResNet-32" in proc.stderr
    sweep = tmp_path / "multirun" / "2026-11-27" / "23-40-01"
    rows = read_csv(sweep / "summary.csv")
    assert [(r["block"], r["depth"], r["status"]) for r in rows] == [
        ("plain", "20", "completed"),
        ("plain", "32", "completed"),
        ("basic", "20", "completed"),
        ("basic", "32", "failed"),
    ]
    assert rows[-1]["job"] == "model.block=basic,model.depth=32"
    md = (sweep / "report.md").read_text()
    assert "**FAILED**: ValueError: the fake trainer refuses ResNet-32" in md
    # one seed: the plain family's verdict is given (provisional); the failed job is named
    assert "**plain**: depth 20 → 32:" in md and "provisional" in md
    assert "Not counted: ResNet-32 failed." in md
    assert_png(sweep / "degradation.png")


def test_gradients_caption_follows_the_measured_norms(sweep: Path) -> None:
    from resnet_exp.report.figures import gradients_caption

    runs = collect_runs(sweep)
    text = gradients_caption(runs)
    assert "plain 32's stem got 0.44× the first-epoch gradient norm of plain 20's" in text
    assert "got less gradient, by less than a factor of ten" in text
    for run in runs:  # the opposite measurement: the deep plain net's stem gets more gradient
        if not run.residual and run.depth == 32:
            run.metrics[0]["grad_norm/stem"] = 0.5
    text = gradients_caption(runs)
    assert "plain 32's stem got 2.27×" in text
    assert "did not get less gradient, so these measurements show no vanishing gradient" in text
