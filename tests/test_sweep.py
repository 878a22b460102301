"""A real depth sweep through the command line ends in a report that matches its jobs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from cli import run_cli
from hand_counts import cifar_flops, cifar_params

from resnet_exp.report.build import build_report

TINY = [
    "data.train_subset=320",
    "data.val_size=64",
    "data.test_subset=128",
    "trainer.epochs=1",
    "logger=none",
]


def sweep_dir_of(cwd: Path) -> Path:
    sweeps = [p.parent for p in (cwd / "outputs" / "multirun").glob("*/*/multirun.yaml")]
    assert len(sweeps) == 1, sweeps
    return sweeps[0]


def job_records(sweep: Path) -> dict[tuple[str, int], tuple[dict, list[dict]]]:
    records = {}
    for summary_path in sweep.glob("*/summary.json"):
        summary = json.loads(summary_path.read_text())
        metrics_path = summary_path.parent / "metrics.jsonl"
        rows = (
            [r for r in map(json.loads, metrics_path.read_text().splitlines()) if "epoch" in r]
            if metrics_path.exists()
            else []
        )
        model = summary.get("model", {})
        records[(model.get("block"), model.get("depth"))] = (summary, rows)
    return records


@pytest.mark.slow
def test_depth_sweep_report_matches_its_jobs(tmp_path: Path, fmnist_root: Path) -> None:
    result = run_cli(
        "--multirun",
        "model/depth=8,14",
        "model/block=plain,basic",
        f"data.root={fmnist_root}",
        *TINY,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = sweep_dir_of(tmp_path)
    last = result.stdout.rstrip("\n").splitlines()  # the verdict, the table, the report's path
    assert (
        last[-1] == f"report: {sweep.relative_to(tmp_path)}/report.md (and report.html beside it)"
    )
    assert [line.split()[0] for line in last[-8:-3]] == ["configuration", "plain-8", "plain-14",
                                                        "ResNet-8", "ResNet-14"]  # fmt: skip
    assert "Provisional (one seed per configuration" in result.stdout
    for name in ("summary.csv", "report.md", "degradation.png", "gradients.png"):
        assert (sweep / name).is_file(), name
    records = job_records(sweep)
    assert set(records) == {("plain", 8), ("plain", 14), ("basic", 8), ("basic", 14)}

    with (sweep / "summary.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert [r["row"] for r in table] == ["config"] * 4 + ["run"] * 4  # one seed per configuration
    rows = [r for r in table if r["row"] == "run"]
    report = (sweep / "report.md").read_text()
    for row in rows:
        summary, metrics = records[(row["block"], int(row["depth"]))]
        assert row["status"] == "completed"
        depth = int(row["depth"])
        # hand counts of the net, and the metrics rows: not the summary the report reads
        assert int(row["params"]) == summary["model"]["params"] == cifar_params(depth)
        assert int(row["flops"]) == cifar_flops(depth)
        best = min(metrics, key=lambda m: m["val/err"])
        assert float(row["final_train_err"]) == metrics[-1]["train/err"]
        assert float(row["best_val_err"]) == best["val/err"]
        assert float(row["test_err_at_best_val"]) == best["test/err"]
        assert f"{metrics[-1]['train/err']:.2f}%" in report
    assert "## Verdict" in report and "plain" in report

    # the figures plot exactly the recorded curves
    rebuilt = build_report(sweep)
    curves = rebuilt.plotted["degradation"]
    for (block, depth), (summary, metrics) in records.items():
        label = f"{'plain' if block == 'plain' else 'ResNet'}-{depth}"
        job_dir = next(
            p.parent
            for p in sweep.glob("*/summary.json")
            if json.loads(p.read_text())["job"] == summary["job"]
        )
        every = [json.loads(x) for x in (job_dir / "metrics.jsonl").read_text().splitlines()]
        steps = [r for r in every if "epoch" not in r]  # per-step training rows
        assert steps, "per-step training rows are recorded"
        assert curves[label]["train"]["x"] == [r["step"] for r in steps]
        assert curves[label]["train"]["mean"] == [r["train_step/err"] for r in steps]
        assert curves[label]["test"]["x"] == [r["step"] for r in metrics]
        assert curves[label]["test"]["mean"] == [r["test/err"] for r in metrics]
    assert (sweep / "degradation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the report command rebuilds the same table and text
    before = {n: (sweep / n).read_bytes() for n in ("summary.csv", "report.md")}
    again = run_cli(str(sweep), "--no-wandb", module="resnet_exp.report", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert {n: (sweep / n).read_bytes() for n in before} == before


@pytest.mark.slow
def test_a_failing_job_is_marked_and_the_report_still_appears(
    tmp_path: Path, fmnist_root: Path
) -> None:
    result = run_cli(
        "--multirun",
        "model.depth=8,9",  # 9 is not 6n+2: that job fails when the model is built
        "model/block=plain",
        f"data.root={fmnist_root}",
        *TINY,
        cwd=tmp_path,
    )
    assert result.returncode != 0  # the sweep says a job failed ...
    sweep = sweep_dir_of(tmp_path)
    with (sweep / "summary.csv").open() as handle:
        rows = {row["depth"]: row for row in csv.DictReader(handle)}
    assert rows["8"]["status"] == "completed"  # ... but the other job ran to the end
    assert rows["9"]["status"] == "failed"
    report = (sweep / "report.md").read_text()
    assert "failed" in report and "model.depth=9 does not fit" in report
    assert (sweep / "degradation.png").is_file()


PRESETS = [
    ("degradation", "cifar10", [20, 32, 44, 56], 5),
    ("degradation_fashionmnist", "fashionmnist", [20, 32, 44, 56], 5),
    ("degradation_quick", "fashionmnist", [20, 56], 5),
]


def assert_papers_recipe(job: dict, preset: str, dataset: str) -> None:
    assert job["data"]["name"] == dataset
    assert job["model"]["shortcut"] == "A" and job["model"]["family"] == "cifar"
    assert job["optimizer"]["_target_"] == "torch.optim.SGD"
    # the paper's lr 0.1 at batch 128, scaled linearly where a preset uses a smaller batch
    lr = 0.1 * job["data"]["batch_size"] / 128
    assert job["optimizer"]["lr"] == pytest.approx(lr, rel=0.05)
    assert job["optimizer"]["momentum"] == 0.9
    assert job["optimizer"]["weight_decay"] == 1e-4
    assert job["scheduler"]["milestones"] == [0.5, 0.75]
    # the paper's batch; the CPU preset buys more steps with a smaller one
    assert job["data"]["batch_size"] == (24 if preset == "degradation_quick" else 128)
    if preset == "degradation":
        assert job["data"]["val_size"] == 5000 and job["data"]["augment"] is True
        steps_per_epoch = -(-(50_000 - 5_000) // 128)
        iterations = job["trainer"]["epochs"] * steps_per_epoch
        assert 64_000 <= iterations < 64_000 + steps_per_epoch  # the paper's 64k iterations
        assert [round(m * iterations, -3) for m in job["scheduler"]["milestones"]] == [
            32_000,
            48_000,
        ]


@pytest.mark.parametrize(("preset", "dataset", "depths", "seeds"), PRESETS)
def test_presets_compose_the_papers_recipe(
    preset: str, dataset: str, depths: list[int], seeds: int
) -> None:
    """In process: each preset's job config, and the blocks, depths and seeds it sweeps."""
    from omegaconf import OmegaConf

    from resnet_exp.hydra_glue.compose import compose

    cfg = compose([f"experiment={preset}"], return_hydra_config=True)
    assert_papers_recipe(OmegaConf.to_container(cfg, resolve=False), preset, dataset)
    params = cfg.hydra.sweeper.params
    assert sorted(int(d) for d in params["model/depth"].split(",")) == depths
    assert sorted(params["model/block"].split(",")) == ["basic", "plain"]
    assert [int(s) for s in params["seed"].split(",")] == list(range(seeds))


@pytest.mark.slow  # a CLI process composing every job (20-40 each); the recipe is checked above
@pytest.mark.parametrize(("preset", "dataset", "depths", "seeds"), PRESETS)
def test_presets_are_sweeps_with_the_papers_recipe(
    tmp_path: Path, preset: str, dataset: str, depths: list[int], seeds: int
) -> None:
    result = run_cli(f"experiment={preset}", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = [yaml.safe_load(doc.split("\n", 1)[1]) for doc in result.stdout.split("# job ")[1:]]
    assert len(jobs) == 2 * len(depths) * seeds
    found = sorted(
        (j["model"]["block"]["path"].rsplit(".", 1)[1], j["model"]["depth"], j["seed"])
        for j in jobs
    )
    assert found == sorted(
        (b, d, s) for b in ("BasicBlock", "PlainBlock") for d in depths for s in range(seeds)
    )
    for job in jobs:
        assert_papers_recipe(job, preset, dataset)


def test_seeds_on_the_command_line_replace_a_presets_seeds(tmp_path: Path) -> None:
    result = run_cli("experiment=degradation_quick", "seed=3,4", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = [yaml.safe_load(doc.split("\n", 1)[1]) for doc in result.stdout.split("# job ")[1:]]
    assert len(jobs) == 8 and sorted({j["seed"] for j in jobs}) == [3, 4]
