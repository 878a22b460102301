"""What each dataset is (channels, image size, classes, mean, std) and the rules every data
option follows; torch-free, so the config layer checks them before torch is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DatasetInfo:
    """What the data layer knows about a dataset before reading it."""

    name: str
    class_name: str  # torchvision.datasets.<class_name>
    folder: str  # relative to root: where torchvision looks for `files`
    files: tuple[str, ...]
    channels: int
    size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def folder_path(self, root: Path) -> Path:
        return root / self.folder

    def missing_files(self, root: Path) -> list[str]:
        folder = self.folder_path(root)
        return [f for f in self.files if not (folder / f).is_file()]


IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_CIFAR10_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")

# fmt: off
DATASETS: dict[str, DatasetInfo] = {
    "fashionmnist": DatasetInfo("fashionmnist", "FashionMNIST", "FashionMNIST/raw", IDX_FILES,
                                1, 28, 10, (0.2860,), (0.3530,)),
    "mnist": DatasetInfo("mnist", "MNIST", "MNIST/raw", IDX_FILES, 1, 28, 10, (0.1307,), (0.3081,)),
    "cifar10": DatasetInfo("cifar10", "CIFAR10", "cifar-10-batches-py", _CIFAR10_FILES, 3, 32, 10,
                           (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": DatasetInfo("cifar100", "CIFAR100", "cifar-100-python", ("train", "test", "meta"),
                            3, 32, 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
# fmt: on

#: The facts a config may interpolate: ``${resnet_exp.dataset:cifar10,mean}``.
CONFIG_FACTS = ("channels", "size", "num_classes", "mean", "std")


def dataset_fact(name: str, fact: str) -> int | list[float]:
    """One fact of one dataset, as a config value (lists, not tuples)."""
    if name not in DATASETS:
        known = ", ".join(DATASETS)
        raise ValueError(f"data.name={name!r} is not a known dataset; valid: {known}.")
    if fact not in CONFIG_FACTS:
        raise ValueError(f"{fact!r} is not a dataset fact; valid: {', '.join(CONFIG_FACTS)}.")
    value = getattr(DATASETS[name], fact)
    return list(value) if isinstance(value, tuple) else value


#: Zero padding on each side before the random crop of ``data.augment`` (He et al. 2015 §4.2).
CROP_PAD = 4

#: The fewest images a training split may have: BatchNorm cannot normalise one sample.
MIN_TRAIN_IMAGES = 2


def input_side(name: str, resize: int | None) -> int:
    """The side of the square images the model sees: ``data.resize`` if given, else the dataset's
    own size."""
    return resize or DATASETS[name].size


#: ``data.val_size=null`` holds out a tenth of the training images, at most this many (the
#: paper's 45k/5k CIFAR split), so ``data.train_subset=N`` alone gives a working quick run.
VAL_SIZE_CAP = 5000


def val_size_for(val_size: int | None, n: int) -> int:
    """The validation images taken from ``n`` training images: ``val_size``, or the rule above."""
    return min(VAL_SIZE_CAP, n // 10) if val_size is None else val_size


def split_problem(n: int, val_size: int | None, train_subset: int | None) -> str | None:
    """Why ``n`` training images (``train_subset`` of them, if set) cannot give ``val_size``
    validation images and a training split; None when they can."""
    least = MIN_TRAIN_IMAGES
    val_size = val_size_for(val_size, n)
    if n < least:
        return (
            f"data.train_subset={n} is too small: training needs at least {least} images (plus "
            f"data.val_size={val_size} for validation); use a train_subset of at least "
            f"{val_size + least}."
        )
    if val_size > n - least:
        subset = f" (data.train_subset={train_subset})" if train_subset is not None else ""
        return (
            f"data.val_size={val_size} leaves {n - val_size} of the {n} training images{subset} "
            f"to train on; use a val_size between 0 and {n - least}."
        )
    return None
