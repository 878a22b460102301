"""Device-resident batches, the default loader: each split lives on the device as uint8 and a
batch is one indexed gather with the augmentation (padded crop + flip) folded in.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from resnet_exp.data import sampling
from resnet_exp.data.facts import CROP_PAD

Batch = tuple[torch.Tensor, torch.Tensor]


def pad_images(images: torch.Tensor, pad: int) -> torch.Tensor:
    """Zero-pad ``[N, C, H, W]`` images on every side (once per split, not per batch)."""
    return F.pad(images, (pad, pad, pad, pad)) if pad else images


def crop_flip(
    padded: torch.Tensor, index: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, size: int
) -> torch.Tensor:
    """Crop ``size x size`` windows of images ``index`` of ``padded``, mirrored where ``flips``;
    ``offsets[b] = (top, left)`` is sample b's window corner in padded coordinates. ``unfold``
    views every window without copying, so one indexing op gathers the whole batch's crops."""
    windows = padded.unfold(2, size, 1).unfold(3, size, 1)  # [N, C, rows, cols, size, size]
    crops = windows[index, :, offsets[:, 0], offsets[:, 1]]  # [B, C, size, size]
    return torch.where(flips[:, None, None, None], crops.flip(-1), crops)


class Normalizer:
    """uint8 -> float32 in [0, 1] -> per-channel ``(x - mean) / std``; can repeat a gray channel."""

    def __init__(
        self, mean: Sequence[float], std: Sequence[float], device: torch.device, repeat: int = 1
    ) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.repeat = repeat

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.repeat > 1:
            x = x.expand(-1, self.repeat, -1, -1)
        return x.to(torch.float32).div_(255.0).sub_(self.mean).div_(self.std)


class TensorLoader:
    """Batches of one split held on the device; see the module docstring."""

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, normalizer: Normalizer, *,
        augment: bool = False, pad: int = CROP_PAD,
    ) -> None:  # fmt: skip
        self.labels = labels
        self.normalize = normalizer
        self.size = images.shape[-1]
        self.augment = augment
        self.pad = pad if augment else 0
        # With augmentation the split is stored pre-padded, so a batch is a single gather.
        self.images = pad_images(images, self.pad)

    def __len__(self) -> int:
        return len(self.labels)

    def train_batches(
        self, batch_size: int, seed: int, epoch: int, *, start_step: int = 0, rank: int = 0,
        world_size: int = 1,
    ) -> Iterator[Batch]:  # fmt: skip
        """Shuffled (and augmented) batches of epoch ``epoch``; a function of (seed, epoch) only."""
        order = sampling.train_order(len(self), batch_size, seed, epoch, rank, world_size)
        return self._train_batches(order, batch_size, seed, epoch, start_step, rank)

    def _train_batches(
        self, order: torch.Tensor, bs: int, seed: int, epoch: int, start_step: int, rank: int
    ) -> Iterator[Batch]:
        device = self.images.device
        if self.augment:  # drawn for the whole epoch at once, on the CPU: identical on any device
            g = sampling.generator(seed, sampling.AUGMENT, epoch, rank)
            offsets = torch.randint(0, 2 * self.pad + 1, (len(order), 2), generator=g).to(device)
            flips = torch.randint(0, 2, (len(order),), generator=g).to(device) == 1
        order = order.to(device)
        for start in range(start_step * bs, len(order), bs):
            idx = order[start : start + bs]
            if self.augment:
                window = slice(start, start + bs)
                x = crop_flip(self.images, idx, offsets[window], flips[window], self.size)
            else:
                x = self.images.index_select(0, idx)
            yield self.normalize(x), self.labels.index_select(0, idx)

    def eval_batches(self, batch_size: int) -> Iterator[Batch]:
        """The split in stored order, un-augmented."""
        p = self.pad
        for start in range(0, len(self), batch_size):
            x = self.images[start : start + batch_size]
            if p:
                x = x[:, :, p:-p, p:-p]
            yield self.normalize(x), self.labels[start : start + batch_size]
