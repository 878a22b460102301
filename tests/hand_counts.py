"""Parameter and FLOP counts of the CIFAR-family nets worked out by hand (paper §4.2 layout).

An oracle independent of the model code: 3x3 stem conv to 16 channels, three stages of ``n``
two-conv blocks at widths 16/32/64 (the first conv of stages 2 and 3 strided, option-A shortcuts
without parameters), BatchNorm (weight and bias) after every conv, global pool, one fc.
FLOPs count a multiply-add as 2 and only convolutions and the fc (as torch's FlopCounterMode does).
"""

from __future__ import annotations


def _convs(depth: int, in_channels: int) -> list[tuple[int, int, int]]:
    """(input channels, output channels, output side divisor) of every 3x3 conv, in order."""
    n = (depth - 2) // 6
    assert 6 * n + 2 == depth, depth
    convs = [(in_channels, 16, 1)]
    for stage, width in enumerate((16, 32, 64)):
        for block in range(n):
            first_in = width // 2 if stage > 0 and block == 0 else width
            convs += [(first_in, width, 2**stage), (width, width, 2**stage)]
    return convs


def cifar_params(depth: int, in_channels: int = 1, classes: int = 10) -> int:
    convs = _convs(depth, in_channels)
    weights = sum(c_in * c_out * 9 for c_in, c_out, _ in convs)
    norms = sum(2 * c_out for _, c_out, _ in convs)
    return weights + norms + 64 * classes + classes


def cifar_flops(depth: int, side: int = 28, in_channels: int = 1, classes: int = 10) -> int:
    macs = 0
    for c_in, c_out, divisor in _convs(depth, in_channels):
        out_side = -(-side // divisor)  # stride 2 with padding 1: ceil(side / 2)
        macs += c_out * out_side * out_side * c_in * 9
    return 2 * (macs + 64 * classes)
