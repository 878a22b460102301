"""Seeded randomness for splits, epoch order and augmentation: each draw comes from its own CPU
generator seeded from ``(run seed, stream, epoch, ...)``, so the split ignores the training order,
epoch ``k`` is the same with or without a resume, and CPU and GPU runs draw identical numbers.
"""

from __future__ import annotations

import numpy as np
import torch

# Stream ids: distinct constants so two uses of the same run seed never share a random sequence.
SPLIT = 1
ORDER = 2
AUGMENT = 3
AUGMENT_PER_SAMPLE = 4


def derive_seed(seed: int, *keys: int) -> int:
    """Mix a run seed with stream keys into a well-spread 63-bit seed (NumPy SeedSequence)."""
    entropy = [int(seed) % 2**64, *(int(k) % 2**64 for k in keys)]
    lo, hi = np.random.SeedSequence(entropy).generate_state(2, np.uint32).tolist()
    return ((hi << 32) | lo) & (2**63 - 1)


def generator(seed: int, *keys: int) -> torch.Generator:
    """A fresh CPU generator for one stream; see :func:`derive_seed`."""
    return torch.Generator().manual_seed(derive_seed(seed, *keys))


def split_indices(n: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Hold out ``val_size`` of ``n`` training images; returns sorted (train, val) indices."""
    perm = torch.randperm(n, generator=generator(seed, SPLIT))
    val = perm[:val_size].sort().values
    train = perm[val_size:].sort().values
    return train, val


def epoch_order(n: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1) -> torch.Tensor:
    """This rank's share of epoch ``epoch``'s shuffled order (a function of seed and epoch only):
    every ``world_size``-th entry, trimmed so all ranks run the same number of steps."""
    perm = torch.randperm(n, generator=generator(seed, ORDER, epoch))
    if world_size > 1:
        perm = perm[rank::world_size][: n // world_size]
    return perm


def train_length(n: int, batch_size: int) -> int:
    """Images used per epoch: all of them, except that a final batch of one image is dropped.

    Keeping the last partial batch matches the usual paper recipe; a batch of one would make
    BatchNorm fail in train mode ("Expected more than 1 value per channel"), so that single image
    sits the epoch out (a different one each epoch, since the order is reshuffled).
    """
    if batch_size > 1 and n % batch_size == 1:
        return n - 1
    return n


def train_order(
    n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1
) -> torch.Tensor:
    """The indices this rank trains on in epoch ``epoch``, in order, shared by both loaders."""
    order = epoch_order(n, seed, epoch, rank, world_size)
    return order[: train_length(len(order), batch_size)]
