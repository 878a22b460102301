"""The study's training-side records: per-step rows, layer responses, and a real replicate study.

Per-step rows and the study run the real CLI on real Fashion-MNIST at tiny sizes; layer responses
are checked against a hand-computed std on a net with hand-set weights.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from cli import run_cli
from torch import nn

from resnet_exp.report.build import build_report
from resnet_exp.training.responses import layer_responses

TINY = [
    "data.train_subset=640",
    "data.val_size=128",
    "data.test_subset=128",
    "data.batch_size=64",
    "trainer.epochs=2",
    "trainer.progress=false",
    "trainer.precision=32",
    "logger.mode=disabled",
]


def test_responses_equal_hand_computed_std() -> None:
    """conv 3x3 (centre weight 2) -> BN (eval: mean 1, var 4, gamma 3, beta 0.5): response =
    3 * (2x - 1) / 2 + 0.5, so its std is 3 * std(x); a 3x3 conv with no BN after it (pre-act
    style) responds with its own output, std 0.5 * std(x); the 1x1 conv is not a 3x3 layer."""
    first = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    bn = nn.BatchNorm2d(1, eps=0.0)
    one = nn.Conv2d(1, 1, 1, bias=False)
    last = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        for conv, centre in ((first, 2.0), (one, 1.0), (last, 0.5)):
            conv.weight.zero_()
            conv.weight[0, 0, conv.kernel_size[0] // 2, conv.kernel_size[1] // 2] = centre
        bn.running_mean.fill_(1.0)
        bn.running_var.fill_(4.0)
        bn.weight.fill_(3.0)
        bn.bias.fill_(0.5)
    net = nn.Sequential(first, bn, nn.ReLU(), one, last)
    x = torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(0)) + 1.0  # > 0: ReLU keeps
    rows = layer_responses(net, [x[:3], x[3:]])
    values = x.double().flatten()
    std_x = math.sqrt(float(((values - values.mean()) ** 2).mean()))
    assert [r["name"] for r in rows] == ["0", "4"]
    assert rows[0]["std"] == pytest.approx(3.0 * std_x, rel=1e-6)
    assert rows[1]["std"] == pytest.approx(0.5 * 3.0 * std_x, rel=1e-6)  # last sees the BN*ReLU
    assert net.training  # left as found


def test_plain_and_residual_twins_record_the_same_layers() -> None:
    from resnet_exp.models import ResNet
    from resnet_exp.models.blocks import BasicBlock, PlainBlock

    x = torch.randn(2, 1, 28, 28)
    twins = [
        ResNet(block=b, depth=14, family="cifar", in_channels=1) for b in (PlainBlock, BasicBlock)
    ]
    names = [[r["name"] for r in layer_responses(m, [x])] for m in twins]
    assert names[0] == names[1] and len(names[0]) == 13  # 13 convs + fc = depth 14


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow  # CLI training on real data; in-process: tests/test_first_principles.py
def test_per_step_rows_agree_with_epoch_rows(tmp_path: Path, fmnist_root: Path) -> None:
    run_dir = tmp_path / "run"
    done = run_cli(
        *TINY, f"data.root={fmnist_root}", "trainer.log_every_steps=3",
        f"hydra.run.dir={run_dir}", cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _rows(run_dir)
    epochs = [r for r in rows if "epoch" in r]
    steps = [r for r in rows if "epoch" not in r]
    # 512 training images / 64 = 8 steps per epoch; windows close every 3 steps and at epoch ends
    assert [r["step"] for r in steps] == [3, 6, 8, 9, 12, 15, 16]
    assert [r["step"] for r in epochs] == [8, 16]
    for epoch in epochs:
        lo = epoch["step"] - 8
        window = [r for r in steps if lo < r["step"] <= epoch["step"]]
        images = sum(r["train_step/images"] for r in window)
        assert images == 512
        for key in ("loss", "err"):
            mean = sum(r[f"train_step/{key}"] * r["train_step/images"] for r in window) / images
            assert mean == pytest.approx(epoch[f"train/{key}"], rel=1e-5)
    responses = list(csv.DictReader((run_dir / "layer_responses.csv").open()))
    assert len(responses) == 19 and all(float(r["std"]) > 0 for r in responses)

    result = build_report(run_dir)
    (curve,) = result.plotted["degradation"].values()
    assert curve["train"]["x"] == [r["step"] for r in steps]
    assert curve["train"]["mean"] == [r["train_step/err"] for r in steps]
    assert curve["test"]["x"] == [8, 16]
    assert curve["test"]["mean"] == [r["test/err"] for r in epochs]
    (profile,) = result.plotted["responses"].values()
    assert profile["std"] == [float(r["std"]) for r in responses]


@pytest.mark.slow
def test_replicate_study_end_to_end(tmp_path: Path, fmnist_root: Path) -> None:
    """A real 2-seed plain/residual sweep through the CLI: every run records step rows and layer
    responses, summary.csv has one statistics row per configuration with n = 2, and the report
    states the depth effects with intervals."""
    sweep = tmp_path / "sweep"
    done = run_cli(
        "--multirun", *TINY, f"data.root={fmnist_root}", "model/block=plain,basic",
        "model/depth=8,14", "seed=0,1", f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    with open(sweep / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    configs = [r for r in rows if r["row"] == "config"]
    assert len(configs) == 4 and {r["n"] for r in configs} == {"2"}
    assert all("seed" not in r["config"] for r in configs)
    assert sum(r["row"] == "run" for r in rows) == 8
    for config in configs:
        runs = [
            float(r["final_train_err"])
            for r in rows
            if r["row"] == "run" and r["config"] == config["config"]
        ]
        assert float(config["final_train_err_mean"]) == pytest.approx(sum(runs) / 2)
    md = (sweep / "report.md").read_text()
    assert "depth effect" in md and "95% CI" in md
    html = (sweep / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3
    for job in sweep.glob("[0-9]*"):
        assert (job / "layer_responses.csv").is_file()
        assert any("train_step/err" in r for r in _rows(job))
