"""The DataModule: turns the ``data`` config into train / val / test batches on a device."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from resnet_exp.data import sampling
from resnet_exp.data.errors import DataConfigError
from resnet_exp.data.facts import MIN_TRAIN_IMAGES, input_side, split_problem, val_size_for
from resnet_exp.data.sources import DATASETS, RawData, load_dataset
from resnet_exp.data.tensor_loader import Batch, Normalizer, TensorLoader
from resnet_exp.data.torchvision_loader import TorchvisionLoader, TransformedImages, build_transform

SPLITS = ("val", "test")
RESIZE_CHUNK = 512  # images resized per call: bounds the float scratch memory of a 224x224 resize

Loader = TensorLoader | TorchvisionLoader


class DataModule:
    """Train / validation / test batches of one dataset, deterministic in (seed, epoch).

    Arguments mirror ``conf/data/*.yaml`` (checked by :mod:`resnet_exp.validation`; here only what
    needs the data itself); omitted ones are the dataset's own (:mod:`resnet_exp.data.facts`).
    Validation is ``val_size`` training images chosen by a permutation seeded from the run seed
    alone; evaluation keeps every image, in stored order, without augmentation.
    """

    def __init__(
        self, *, name: str, root: str | Path = "data", download: bool = False,
        batch_size: int = 128, eval_batch_size: int | None = None, val_size: int | None = None,
        train_subset: int | None = None, test_subset: int | None = None, augment: bool = False,
        resize: int | None = None, loader: str = "tensor", num_workers: int = 0,
        in_channels: int | None = None, num_classes: int | None = None,
        mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
    ) -> None:  # fmt: skip
        info = self.info = DATASETS[name]
        self.name = name
        self.root = Path(root).expanduser()
        if not self.root.is_absolute():
            self.root = Path.cwd() / self.root
        self.download, self.augment = bool(download), bool(augment)
        self.batch_size = int(batch_size)
        self.eval_batch_size = 2 * self.batch_size if eval_batch_size is None else eval_batch_size
        self.val_size = None if val_size is None else int(val_size)
        self.train_subset = train_subset
        self.test_subset = test_subset
        self.resize = resize
        self.loader = loader
        self.num_workers = num_workers
        self.in_channels = in_channels or info.channels
        self.num_classes = num_classes or info.num_classes
        self.image_size = input_side(name, resize)  # what the model sees
        self.mean = _per_channel(info.mean if mean is None else mean, self.in_channels)
        self.std = _per_channel(info.std if std is None else std, self.in_channels)

        self.source: str | None = None  # 'root', 'download' or 'debian' once loaded
        self._raw: RawData | None = None
        self._train: Loader | None = None
        self._eval: dict[str, Loader] = {}
        self._device: torch.device | None = None
        self._seed = 0
        self._rank, self._world_size = 0, 1

    # ------------------------------------------------------------------ setup
    def setup(
        self, device: torch.device | str, seed: int, *, rank: int = 0, world_size: int = 1
    ) -> None:
        """Read the dataset (once per DataModule), split it with ``seed``, place it on ``device``.

        ``rank``/``world_size`` (distributed data parallel): every rank sees a disjoint, equally
        long share of each epoch; ``batch_size`` stays the global batch, so each rank's batch is
        ``batch_size // world_size``. Evaluation is not sharded: every rank sees all of it.
        """
        device = torch.device(device)
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank={rank}, world_size={world_size}: need 0 <= rank < world_size")
        if self.batch_size % world_size:
            raise DataConfigError(
                f"data.batch_size={self.batch_size} cannot be split evenly over {world_size} "
                f"processes; use a multiple of {world_size}."
            )
        if self._raw is None:
            self._raw = load_dataset(self.name, self.root, self.download)
            self.source = self._raw.source
        raw = self._raw
        n = self._check_sizes(raw, world_size)
        train_idx, val_idx = sampling.split_indices(n, self.val_size, int(seed))
        images, labels = raw.train_images[:n], raw.train_labels[:n]
        splits = {
            "train": (images[train_idx], labels[train_idx]),
            "val": (images[val_idx], labels[val_idx]),
            "test": (raw.test_images[: self.test_subset], raw.test_labels[: self.test_subset]),
        }
        self.train_indices, self.val_indices = train_idx, val_idx
        self._device, self._seed, self._rank, self._world_size = device, int(seed), rank, world_size
        repeat = self.in_channels if self.in_channels != self.info.channels else 1
        if self.loader == "tensor":
            norm = Normalizer(self.mean, self.std, device, repeat)
            placed = {k: (self._resize(x.to(device)), y.to(device)) for k, (x, y) in splits.items()}
            self._train = TensorLoader(*placed["train"], norm, augment=self.augment)
            self._eval = {k: TensorLoader(*placed[k], norm) for k in SPLITS}
        elif self.loader == "torchvision":
            kw = dict(resize=self.resize, size=self.image_size, repeat=repeat)
            kw.update(mean=self.mean, std=self.std)
            aug, plain = build_transform(augment=self.augment, **kw), build_transform(**kw)
            workers = self.num_workers
            self._train = TorchvisionLoader(
                TransformedImages(*splits["train"], aug), device, workers, augment=self.augment
            )
            self._eval = {
                k: TorchvisionLoader(TransformedImages(*splits[k], plain), device, workers)
                for k in SPLITS
            }
        else:
            raise ValueError(f"loader={self.loader!r}; expected tensor or torchvision")

    def _check_sizes(self, raw: RawData, world_size: int) -> int:
        """Check the size options against the loaded data; returns the training-pool size."""
        classes = self.info.num_classes
        for split, labels in (("training", raw.train_labels), ("test", raw.test_labels)):
            bad = ((labels < 0) | (labels >= classes)).nonzero()
            if len(bad):  # the dataset documents its classes: anything else is a damaged file
                index = int(bad[0])
                raise DataConfigError(
                    f"{self.name}'s {split} labels are damaged: image {index} has label "
                    f"{int(labels[index])}, but {self.name} has {classes} classes (labels 0-"
                    f"{classes - 1}); {len(bad)} label(s) are out of range. The label file under "
                    f"data.root={self.root} is corrupt: delete it and fetch it "
                    "again (data.download=true), or point data.root at an intact copy."
                )
        n = n_total = len(raw.train_labels)
        subset = ""
        if self.train_subset is not None:
            if self.train_subset > n_total:
                raise DataConfigError(
                    f"data.train_subset={self.train_subset} exceeds the {n_total} training images "
                    f"of {self.name}; use at most {n_total}, or null for all of them."
                )
            n = self.train_subset
            subset = f" (data.train_subset={n})"
        n_test = len(raw.test_labels)
        if self.test_subset is not None and self.test_subset > n_test:
            raise DataConfigError(
                f"data.test_subset={self.test_subset} exceeds the {n_test} test images of "
                f"{self.name}; use at most {n_test}, or null for all of them."
            )
        self.val_size = val_size_for(self.val_size, n)  # null: the rule in facts.py
        problem = split_problem(n, self.val_size, self.train_subset)
        if problem:
            raise DataConfigError(problem)
        if self.batch_size > n - self.val_size:  # the batch would be cut to the training set
            raise DataConfigError(
                f"data.batch_size={self.batch_size} is more than the {n - self.val_size} "
                f"training images{subset} after data.val_size={self.val_size}; every step would "
                f"use only those. Use a batch_size of at most {n - self.val_size}, or train on "
                "more images (data.train_subset)."
            )
        if (n - self.val_size) // world_size < MIN_TRAIN_IMAGES:
            raise DataConfigError(
                f"{n - self.val_size} training images{subset} are too few to share among "
                f"{world_size} processes; use a larger train_subset or a smaller val_size."
            )
        return n

    def _resize(self, images: torch.Tensor) -> torch.Tensor:
        """Resize a whole split once (bilinear, antialiased; chunked to bound scratch memory)."""
        s = self.resize
        if s is None or tuple(images.shape[-2:]) == (s, s):
            return images
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as TF

        out = torch.empty(
            (len(images), images.shape[1], s, s), dtype=torch.uint8, device=images.device
        )
        for i in range(0, len(images), RESIZE_CHUNK):
            chunk = images[i : i + RESIZE_CHUNK]
            out[i : i + RESIZE_CHUNK] = TF.resize(
                chunk, [s, s], interpolation=InterpolationMode.BILINEAR, antialias=True
            )
        return out

    # ---------------------------------------------------------------- batches
    def train_batches(self, epoch: int, start_step: int = 0) -> Iterator[Batch]:
        """Epoch ``epoch``'s ``(x float[N,C,H,W], y int64[N])`` batches in (seed, epoch) order,
        from ``start_step`` on (resuming mid-epoch sees the same remaining ones)."""
        world = self._world_size
        where = dict(start_step=int(start_step), rank=self._rank, world_size=world)
        return self._ready().train_batches(
            self.batch_size // world, self._seed, int(epoch), **where
        )

    def eval_batches(self, split: str) -> Iterator[Batch]:
        """All images of ``split`` ('val' or 'test') in a fixed order, un-augmented."""
        self._ready()
        if split not in self._eval:
            raise ValueError(f"split={split!r}; choose one of {', '.join(SPLITS)}")
        return self._eval[split].eval_batches(self.eval_batch_size)

    # ----------------------------------------------------------------- counts
    @property
    def num_train(self) -> int:
        """Training images (all ranks together)."""
        return len(self._ready())

    @property
    def num_val(self) -> int:
        self._ready()
        return len(self._eval["val"])

    @property
    def num_test(self) -> int:
        self._ready()
        return len(self._eval["test"])

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch on this rank."""
        per_rank = len(self._ready()) // self._world_size
        bs = self.batch_size // self._world_size
        return math.ceil(sampling.train_length(per_rank, bs) / bs)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the batches the model receives; known before setup."""
        return (self.in_channels, self.image_size, self.image_size)

    def describe(self) -> dict[str, Any]:
        """Plain facts for logs and run records (counts only after setup)."""
        d: dict[str, Any] = {
            "dataset": self.name, "root": str(self.root), "loader": self.loader,
            "image_shape": list(self.image_shape), "num_classes": self.num_classes,
            "batch_size": self.batch_size, "eval_batch_size": self.eval_batch_size,
            "augment": self.augment, "resize": self.resize, "train_subset": self.train_subset,
            "test_subset": self.test_subset,
        }  # fmt: skip
        if self._train is not None:
            counts = ("num_train", "num_val", "num_test", "steps_per_epoch", "source")
            d.update({key: getattr(self, key) for key in counts}, device=str(self._device))
        return d

    def _ready(self) -> Loader:
        if self._train is None:
            raise RuntimeError("call DataModule.setup(device, seed) before asking for batches")
        return self._train


def _per_channel(values: Sequence[float], channels: int) -> list[float]:
    """One float per channel; a single value is repeated (gray statistics on repeated channels)."""
    out = [float(v) for v in values]
    return out * channels if len(out) == 1 else out
