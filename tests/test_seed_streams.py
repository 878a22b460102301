"""Every random stream follows the run seed, observed at the stream itself: the same seed repeats
it, another seed changes it. Streams: the validation split, the epoch order (both loaders),
the augmentation draws (the tensor loader's per-epoch draws and the torchvision loader's
per-sample ones); the initial weights are observed by
tests/test_first_principles.py::test_the_seed_decides_the_run (the first step's weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_data import collect, image_ids, make_dm, make_root, unnormalise

from resnet_exp.data import sampling

SEEDS = (3, 3, 4)  # the same seed twice, then another


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_root(tmp_path_factory.mktemp("streams"))


def repeats_and_follows(a, b, c, same=torch.equal) -> None:
    assert same(a, b), "the same seed drew something else"
    assert not same(a, c), "another seed drew the same"


def test_the_validation_split_follows_the_seed(root: Path) -> None:
    splits = [make_dm(root, seed=s).val_indices for s in SEEDS]
    repeats_and_follows(*splits)


@pytest.mark.parametrize("loader", ["tensor", "torchvision"])
def test_the_epoch_order_follows_the_seed(root: Path, loader: str) -> None:
    """Images traced by the ids their pixels spell, so this is the order itself."""

    def order(seed: int) -> list[int]:
        dm = make_dm(root, seed=seed, loader=loader, val_size=0)  # no split to confound it
        return image_ids(unnormalise(collect(dm.train_batches(2))[0], dm))

    repeats_and_follows(*(order(s) for s in SEEDS), same=list.__eq__)


def test_each_epoch_has_its_own_order(root: Path) -> None:
    dm = make_dm(root, seed=3, val_size=0)
    orders = [image_ids(unnormalise(collect(dm.train_batches(e))[0], dm)) for e in (0, 1)]
    assert sorted(orders[0]) == sorted(orders[1]) and orders[0] != orders[1]


@pytest.mark.parametrize("loader", ["tensor", "torchvision"])
def test_the_augmentation_draws_follow_the_seed(tmp_path: Path, loader: str) -> None:
    """Every training image the same picture: the epoch order cannot show in the batches, so
    what differs between seeds is the augmentation draws alone."""
    root = make_root(tmp_path)
    raw = root / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    data = bytearray(raw.read_bytes())
    picture = torch.randint(0, 256, (28 * 28,), generator=torch.Generator().manual_seed(0))
    for i in range(len(data[16:]) // 784):
        data[16 + 784 * i : 16 + 784 * (i + 1)] = bytes(picture.to(torch.uint8).tolist())
    raw.write_bytes(bytes(data))

    def augmented(seed: int) -> torch.Tensor:
        dm = make_dm(root, seed=seed, loader=loader, augment=True, val_size=0)
        x = collect(dm.train_batches(1))[0]
        if loader == "tensor":  # drawn per position in the epoch
            return x
        # drawn per image index: put the images back in index order, so the order cannot show
        order = sampling.train_order(dm.num_train, dm.batch_size, seed, 1)
        return x[order.argsort()]

    a, b, c = (augmented(s) for s in SEEDS)
    repeats_and_follows(a, b, c)
    assert not torch.equal(a[0], a[1]) or not torch.equal(a[1], a[2])  # drawn per image
