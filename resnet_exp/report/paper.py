"""Reference facts from He et al. 2015, Table 6 (CIFAR-10 test error, %, and parameters).

Shown beside our numbers only where a sweep ran on `data=cifar10`. ResNet-110's entry is
"best (mean ± std)" over 5 runs, as the paper reports it; the others are single numbers.
"""

from __future__ import annotations

# depth -> (params as printed in the paper, test error as printed in the paper)
TABLE6_CIFAR10_RESNET = {
    20: ("0.27M", "8.75"), 32: ("0.46M", "7.51"), 44: ("0.66M", "7.17"), 56: ("0.85M", "6.97"),
    110: ("1.7M", "6.43 (6.61±0.16)"), 1202: ("19.4M", "7.93"),
}  # fmt: skip
