"""What each model family and shortcut option is: the one home of these tables (torch-free, so
the config layer reads them before torch is imported)."""

from __future__ import annotations

from dataclasses import dataclass

#: Shortcut options (paper Table 3): what each one does, in the order the paper lists them.
SHORTCUTS: dict[str, str] = {
    "A": "zero-pad identity",
    "B": "projection where the shape changes",
    "C": "projection everywhere",
}


@dataclass(frozen=True)
class Family:
    """The fixed skeleton of a family: stem, stage widths, the shortcut it uses by default, and
    its stage layouts: blocks per stage keyed by (layers per block, depth); none means every
    stage has n blocks (depth = stages * layers per block * n + 2)."""

    widths: tuple[int, ...]
    stem_kernel: int
    stem_stride: int
    stem_pool: bool
    default_shortcut: str
    layouts: dict[tuple[int, int], tuple[int, ...]] | None = None


FAMILIES: dict[str, Family] = {
    # He et al. 2015 §4.2: three stages of 16/32/64 filters on 32x32 inputs, 3x3 stem, no max-pool.
    "cifar": Family(
        (16, 32, 64), stem_kernel=3, stem_stride=1, stem_pool=False, default_shortcut="A"
    ),
    # He et al. 2015 Table 1: 7x7 stride-2 stem, 3x3 max-pool, four stages of 64/128/256/512.
    "imagenet": Family(
        (64, 128, 256, 512),
        stem_kernel=7,
        stem_stride=2,
        stem_pool=True,
        default_shortcut="B",
        layouts={
            (2, 18): (2, 2, 2, 2),
            (2, 34): (3, 4, 6, 3),
            (3, 50): (3, 4, 6, 3),
            (3, 101): (3, 4, 23, 3),
            (3, 152): (3, 8, 36, 3),
        },  # fmt: skip
    ),  # fmt: skip
}

#: The family a model config builds unless its depth preset names another.
DEFAULT_FAMILY = "cifar"


def family_of(name: str) -> Family:
    """The family ``name``, or a ValueError listing the known ones."""
    if name not in FAMILIES:
        raise ValueError(f"family={name!r}; known families: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def shortcut_for(family: str, shortcut: str | None) -> str:
    """The shortcut option a model uses: ``shortcut`` (any case), or its family's default."""
    chosen = (shortcut or family_of(family).default_shortcut).upper()
    if chosen not in SHORTCUTS:
        raise ValueError(f"shortcut={chosen!r}; options: {', '.join(SHORTCUTS)}")
    return chosen


def default_shortcuts() -> str:
    """``A for cifar, B for imagenet``: what a null shortcut means, as the config error says it."""
    return ", ".join(f"{f.default_shortcut} for {name}" for name, f in FAMILIES.items())


def shortcut_options() -> str:
    """``A: zero-pad identity, B: ...``: each option as the config error explains it."""
    return ", ".join(f"{key}: {what}" for key, what in SHORTCUTS.items())
