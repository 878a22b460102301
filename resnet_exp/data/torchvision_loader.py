"""The conventional pipeline (``data.loader=torchvision``): a DataLoader over transforms.v2, with
the tensor loader's batches; each sample's transform is seeded from (seed, epoch, index), so
results do not depend on ``num_workers``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from resnet_exp.data import sampling
from resnet_exp.data.facts import CROP_PAD

Batch = tuple[torch.Tensor, torch.Tensor]


class RepeatChannels(torch.nn.Module):
    """Gray to ``n`` identical channels (a module, not a lambda: workers must pickle it)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(self.n, -1, -1) if self.n > 1 else x


def build_transform(
    *, augment: bool = False, resize: int | None, size: int, repeat: int, mean: Sequence[float],
    std: Sequence[float],
) -> torch.nn.Module:  # fmt: skip
    """resize -> (padded crop, flip) -> channels -> float in [0, 1] -> normalise; uint8 CHW in."""
    from torchvision.transforms import v2

    steps: list[torch.nn.Module] = []
    if resize is not None:
        steps.append(
            v2.Resize((resize, resize), interpolation=v2.InterpolationMode.BILINEAR, antialias=True)
        )
    if augment:
        steps += [v2.RandomCrop(size, padding=CROP_PAD), v2.RandomHorizontalFlip()]
    steps += [
        RepeatChannels(repeat),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(mean), list(std)),
    ]
    return v2.Compose(steps)


class TransformedImages(Dataset):
    """uint8 images and labels, transformed per sample; randomness keyed by (seed, epoch, i)."""

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, transform: torch.nn.Module
    ) -> None:
        self.images = images
        self.labels = labels
        self.transform = transform
        self.seed: int | None = None  # None: deterministic transform, no RNG handling needed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Batch:
        img = self.images[i]
        if self.seed is None:
            return self.transform(img), self.labels[i]
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(
                sampling.derive_seed(self.seed, sampling.AUGMENT_PER_SAMPLE, self.epoch, i)
            )
            return self.transform(img), self.labels[i]


class TorchvisionLoader:
    """Batches of one split through a DataLoader, moved to ``device``."""

    def __init__(
        self, dataset: TransformedImages, device: torch.device, num_workers: int = 0, *,
        augment: bool = False,
    ) -> None:  # fmt: skip
        self.dataset = dataset
        self.device = device
        self.num_workers = num_workers
        self.augment = augment

    def __len__(self) -> int:
        return len(self.dataset)

    def _batches(
        self, dataset: TransformedImages, indices: list[int], batch_size: int, seed: int
    ) -> Iterator[Batch]:
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=indices,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(seed),  # keeps the global RNG untouched
        )
        pinned = self.device.type == "cuda"
        for x, y in loader:
            yield x.to(self.device, non_blocking=pinned), y.to(self.device, non_blocking=pinned)

    def train_batches(
        self, batch_size: int, seed: int, epoch: int, *, start_step: int = 0, rank: int = 0,
        world_size: int = 1,
    ) -> Iterator[Batch]:  # fmt: skip
        """Same order and batch boundaries as :meth:`TensorLoader.train_batches`."""
        order = sampling.train_order(len(self), batch_size, seed, epoch, rank, world_size)
        order = order[start_step * batch_size :]
        # A shallow copy shares the tensors; this epoch's keys travel with it to the workers.
        dataset = copy.copy(self.dataset)
        dataset.seed = seed if self.augment else None
        dataset.epoch = epoch
        return self._batches(
            dataset,
            order.tolist(),
            batch_size,
            sampling.derive_seed(seed, sampling.ORDER, epoch, rank),
        )

    def eval_batches(self, batch_size: int) -> Iterator[Batch]:
        """The split in stored order, un-augmented."""
        dataset = copy.copy(self.dataset)
        dataset.seed = None
        return self._batches(dataset, list(range(len(self))), batch_size, 0)
