"""FLOPs and the summary command against hand formulas and published numbers.

``count_flops`` counts a multiply-add as 2 FLOPs (torch's FlopCounterMode convention), so the
published ResNet-18 figure of 1.8 G (He et al. 2015, Table 1: multiply-adds) is half its total.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from cli import run_cli
from hydra.utils import instantiate
from torch import nn

from resnet_exp.hydra_glue.compose import compose
from resnet_exp.models.profile import count_flops

TORCHVISION_RESNET18_PARAMS = 11_689_512  # torchvision.models.resnet18(): 3 channels, 1000 classes


def test_conv_flops_are_twice_the_hand_counted_multiply_adds() -> None:
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
    # every one of 8 x 16 x 16 outputs is a sum of 3 x 3 x 3 products
    macs = 8 * 16 * 16 * (3 * 3 * 3)
    assert count_flops(conv, (3, 16, 16)) == 2 * macs == 110_592
    strided = nn.Conv2d(4, 6, kernel_size=3, stride=2, padding=1, bias=False)
    assert count_flops(strided, (4, 10, 10)) == 2 * (6 * 5 * 5 * 4 * 9)


def test_linear_flops_are_twice_in_times_out() -> None:
    # the bias additions are not counted (FlopCounterMode counts the matmul only)
    assert count_flops(nn.Linear(512, 10), (512,)) == 2 * 512 * 10


def test_resnet18_at_224_is_the_published_1_8_gmacs() -> None:
    model = instantiate(
        compose(["model=resnet18", "data.in_channels=3", "data.num_classes=1000"]).model
    )
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_RESNET18_PARAMS
    flops = count_flops(model, (3, 224, 224))
    macs = flops / 2
    assert macs == pytest.approx(1.8e9, rel=0.02), macs  # counted: 1.814 G
    assert flops == pytest.approx(3.6e9, rel=0.02)  # so the number is FLOPs, not MACs


def test_summary_command_prints_resnet18_shapes_params_and_flops(tmp_path: Path) -> None:
    """SPEC §3: on 1x224x224, stage outputs 64x56x56 (pool), 64x56x56, 128x28x28, 256x14x14,
    512x7x7, then 512 features and 10 logits."""
    result = run_cli(
        "model=resnet18", "data=fashionmnist", "data.resize=224", module="resnet_exp.summary",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {}
    for line in result.stdout.splitlines():
        match = re.match(r"^(\S+)\s+(\w+)\s+([\dx]+)\s+([\d,]+)\s+([\d,]+)$", line)
        if match:
            name, kind, shape, params, flops = match.groups()
            rows[name] = (kind, shape, int(params.replace(",", "")), int(flops.replace(",", "")))
    assert "input 1x224x224, 10 classes" in result.stdout
    shapes = {name: row[1] for name, row in rows.items()}
    assert shapes["stem.pool"] == "64x56x56"
    assert [shapes[f"stages.stage{s}.1"] for s in (1, 2, 3, 4)] == [
        "64x56x56",
        "128x28x28",
        "256x14x14",
        "512x7x7",
    ]
    assert shapes["head.flatten"] == "512" and shapes["head.fc"] == "10"
    # hand counts: the 1-channel 7x7 stem, a 64-wide block's two 3x3 convs at 56x56, the fc
    assert rows["stem.conv"][2] == 64 * 1 * 7 * 7
    assert rows["stem.conv"][3] == 2 * 64 * 112 * 112 * (1 * 7 * 7)
    assert rows["stages.stage1.0"][3] == 2 * 2 * (64 * 56 * 56 * 64 * 9)
    assert rows["head.fc"][2:] == (512 * 10 + 10, 2 * 512 * 10)
    # torchvision's count less two stem input channels and 990 of the 1000 classes
    params = TORCHVISION_RESNET18_PARAMS - 2 * 64 * 7 * 7 - 990 * (512 + 1)
    assert f"total params: {params:,}" in result.stdout
    total = int(re.search(r"forward FLOPs per image: ([\d,]+)", result.stdout)[1].replace(",", ""))
    assert total == sum(row[3] for row in rows.values())
    assert f"{total // 2:,} MACs" in result.stdout


def test_summary_command_bad_override_is_one_clear_error(tmp_path: Path) -> None:
    result = run_cli("model.depth=19", module="resnet_exp.summary", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "19" in result.stderr and "error:" in result.stderr


def test_count_flops_leaves_the_model_as_it_was() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_flops(model, (1, 8, 8))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
