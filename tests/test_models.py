"""The model zoo: every preset and block builds the network the paper describes."""

from __future__ import annotations

import pytest
import torch
import torchvision
from hydra.utils import instantiate
from torch import nn

from resnet_exp.data.facts import input_side
from resnet_exp.hydra_glue.compose import compose
from resnet_exp.models import (
    BasicBlock,
    Block,
    Bottleneck,
    InvalidModel,
    PlainBlock,
    PlainBottleneck,
    PreActBlock,
    ResNet,
    ZeroPadShortcut,
)
from resnet_exp.models.facts import FAMILIES

IMAGENET = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
CIFAR = ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet1202"]
TWO_LAYER = ["basic", "preact", "plain"]
THREE_LAYER = ["bottleneck", "plain_bottleneck"]

IMAGENET_LAYOUTS = FAMILIES["imagenet"].layouts


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def main_path_layers(model: nn.Module) -> int:
    """Convs and linears outside shortcut modules: the paper's definition of depth."""
    return sum(
        isinstance(m, (nn.Conv2d, nn.Linear)) and ".shortcut" not in f".{name}"
        for name, m in model.named_modules()
    )


def build(*overrides: str) -> ResNet:
    return instantiate(compose(list(overrides)).model)


def blocks_for(preset: str) -> list[str]:
    bottleneck_preset = preset in ("resnet50", "resnet101", "resnet152")
    return THREE_LAYER if bottleneck_preset else TWO_LAYER


CASES = [
    (preset, block)
    for preset in IMAGENET + CIFAR
    if preset != "resnet1202"
    for block in blocks_for(preset)
]


@pytest.mark.parametrize(("preset", "block"), CASES)
@pytest.mark.parametrize("data", ["fashionmnist", "cifar10"])
def test_every_preset_and_block_trains_a_step(preset: str, block: str, data: str) -> None:
    cfg = compose([f"model={preset}", f"model/block={block}", f"data={data}"])
    model = instantiate(cfg.model)
    side = 32 if cfg.model.family == "imagenet" else input_side(cfg.data.name, cfg.data.resize)
    x = torch.randn(2, cfg.data.in_channels, side, side)
    out = model(x)
    assert out.shape == (2, cfg.data.num_classes)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert main_path_layers(model) == cfg.model.depth


def test_resnet1202_builds_and_runs() -> None:
    model = build("model=resnet1202", "data=cifar10")
    assert main_path_layers(model) == 1202
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize("depth", [18, 20, 32, 34, 44, 50, 56, 101, 110, 152, 164, 1202])
def test_depth_group_option_gives_that_many_weighted_layers(depth: int) -> None:
    block = "bottleneck" if depth in (50, 101, 152, 164) else "basic"
    model = build(f"model/depth={depth}", f"model/block={block}")
    assert model.depth == depth
    assert main_path_layers(model) == depth


@pytest.mark.parametrize("n", [1, 2, 5, 7])
@pytest.mark.parametrize(
    ("block", "per_n"),
    [(BasicBlock, 6), (PlainBlock, 6), (PreActBlock, 6), (Bottleneck, 9), (PlainBottleneck, 9)],
)
def test_arbitrary_cifar_depths(n: int, block: type[Block], per_n: int) -> None:
    depth = per_n * n + 2
    assert main_path_layers(ResNet(block, depth)) == depth


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_imagenet_family_matches_torchvision_parameter_counts(depth: int) -> None:
    block = "basic" if depth < 50 else "bottleneck"
    cfg = compose(
        [
            f"model/depth={depth}",
            f"model/block={block}",
            "data.in_channels=3",
            "data.num_classes=1000",
        ]
    )
    ours = instantiate(cfg.model)
    theirs = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    assert ours.shortcut == "B"
    assert params(ours) == params(theirs)


def test_resnet50_has_the_published_count() -> None:
    assert params(ResNet(Bottleneck, 50, "imagenet", 3, 1000)) == 25_557_032


# He et al. 2015, Table 6: parameters of the CIFAR-10 nets (option A, so plain == residual).
TABLE6 = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7, 1202: 19.4}


@pytest.mark.parametrize("depth", TABLE6)
def test_cifar_family_matches_paper_table6_and_plain_twin(depth: int) -> None:
    residual = build(f"model=resnet{depth}", "data=cifar10")
    plain = build(f"model=resnet{depth}", "model/block=plain", "data=cifar10")
    assert residual.shortcut == "A"
    assert params(plain) == params(residual)
    digits = 1 if depth >= 110 else 2
    assert round(params(residual) / 1e6, digits) == TABLE6[depth]


def test_seed_resnet18_stage_shapes() -> None:
    model = build("model=resnet18", "data=fashionmnist").eval()
    x = torch.randn(1, 1, 224, 224)
    shapes = [tuple(model.stem(x).shape[1:])]
    h = model.stem(x)
    for stage in model.stages:
        h = stage(h)
        shapes.append(tuple(h.shape[1:]))
    features = torch.flatten(model.head.pool(h), 1)
    assert shapes == [(64, 56, 56), (64, 56, 56), (128, 28, 28), (256, 14, 14), (512, 7, 7)]
    assert features.shape[1] == 512
    assert model(x).shape == (1, 10)


def test_bottleneck_is_reduce_strided_3x3_expand_with_bn_after_each_conv() -> None:
    block = Bottleneck(256, 128, stride=2, shortcut=None)
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(1, 1), (3, 3), (1, 1)]
    assert [c.stride for c in convs] == [(1, 1), (2, 2), (1, 1)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(256, 128), (128, 128), (128, 512)]
    order = [type(m).__name__ for m in block.children()]
    assert order[:6] == ["Conv2d", "BatchNorm2d", "Conv2d", "BatchNorm2d", "Conv2d", "BatchNorm2d"]


def test_preact_block_orders_bn_relu_conv() -> None:
    block = PreActBlock(16, 16).eval()
    calls: list[str] = []
    for m in block.modules():
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.ReLU)):
            m.register_forward_hook(lambda mod, i, o: calls.append(type(mod).__name__))
    block(torch.randn(1, 16, 8, 8))
    assert calls == ["BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU", "Conv2d"]


@pytest.mark.parametrize("cls", [PlainBlock, PlainBottleneck])
def test_plain_block_output_is_its_main_path(cls: type[Block]) -> None:
    block = cls(64, 64 // cls.expansion).eval()
    assert block.shortcut is None and not block.residual
    x = torch.randn(2, 64, 8, 8)
    main = x
    for name in ("conv1", "bn1", "relu", "conv2", "bn2"):
        main = getattr(block, name)(main)
    if cls is PlainBottleneck:
        main = block.bn3(block.conv3(block.relu(main)))
    assert torch.equal(block(x), torch.relu(main))
    # and unlike its residual twin, feeding zeros through a zero main path gives zeros, not x
    with torch.no_grad():
        for m in block.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.zero_()
                m.bias.zero_()
    assert torch.count_nonzero(block(x)) == 0


def test_residual_block_adds_the_shortcut() -> None:
    block = BasicBlock(16, 16).eval()
    nn.init.zeros_(block.bn2.weight)
    x = torch.rand(1, 16, 4, 4)
    assert torch.allclose(block(x), torch.relu(x))


def test_shortcut_options() -> None:
    a = ResNet(BasicBlock, 20, shortcut="A")
    b = ResNet(BasicBlock, 20, shortcut="B")
    c = ResNet(BasicBlock, 20, shortcut="C")
    assert any(isinstance(m, ZeroPadShortcut) for m in a.modules())
    assert params(a) < params(b) < params(c)
    projections = [
        blk for blk in c.modules() if isinstance(blk, Block) and blk.shortcut is not None
    ]
    assert len(projections) == 9  # every block projects under option C
    assert sum(isinstance(blk, Block) and blk.shortcut is not None for blk in b.modules()) == 2


def test_zero_pad_shortcut_keeps_identity_and_pads_zeros() -> None:
    x = torch.randn(2, 16, 8, 8)
    out = ZeroPadShortcut(32, 2)(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(out[:, 16:]) == 0


def test_zero_init_residual_makes_every_block_start_as_identity() -> None:
    model = ResNet(BasicBlock, 20, zero_init_residual=True)
    last = [m.last_norm().weight for m in model.modules() if isinstance(m, Block)]
    assert all(torch.count_nonzero(w) == 0 for w in last)
    # plain nets are left alone: zeroing them would cut the signal
    plain = ResNet(PlainBlock, 20, zero_init_residual=True)
    assert all(
        torch.count_nonzero(m.last_norm().weight) > 0
        for m in plain.modules()
        if isinstance(m, Block)
    )


def test_kaiming_init_of_convs() -> None:
    conv = ResNet(BasicBlock, 56).stages.stage3[0].conv1
    fan_out = conv.out_channels * 9
    assert conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.1)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["model/block=bottleneck", "model/depth=34"], "34"),
        (["model.depth=21"], "21"),
        (["model=resnet50", "model/block=basic"], "50"),
        (["model/block=bottleneck", "model/depth=44"], "44"),
    ],
)
def test_impossible_depth_names_value_and_valid_depths(overrides: list[str], named: str) -> None:
    with pytest.raises(Exception) as info:
        build(*overrides)
    error = info.value.__cause__ if info.value.__cause__ else info.value
    assert isinstance(error, InvalidModel)
    message = str(error)
    assert f"model.depth={named}" in message
    assert any(d in message for d in ("18, 34", "50, 101, 152", "20, 26", "11, 20, 29"))


def test_imagenet_layout_table_is_the_papers() -> None:
    assert IMAGENET_LAYOUTS[(3, 101)] == (3, 4, 23, 3)
    assert ResNet(Bottleneck, 152, "imagenet").stages.stage3.__len__() == 36
