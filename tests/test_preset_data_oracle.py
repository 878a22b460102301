"""The data path of every preset, batch for batch, against torchvision's reference transforms
(transforms.v2: antialiased bilinear resize, zero-padded crop, flip, scale to [0, 1], normalise) at
the sizes the preset really uses: its dataset's image side, its resize (the quick preset
downsamples 28 -> 20, where a resize without antialiasing differs by up to ~1 in normalised
units), its batch size, crop padding and statistics, read from the composed preset config.

Only the image count is cut (a few batches of fake images in the dataset's real file format).
Augmented batches are checked against every crop window and flip of the reference image (the
draws themselves are tests/test_seed_streams.py's)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from test_data import skip_cifar_md5, write_cifar, write_idx  # noqa: F401 (a fixture)
from torchvision.transforms import v2

from resnet_exp.data import sampling
from resnet_exp.data.facts import CROP_PAD, input_side
from resnet_exp.hydra_glue.compose import compose

PRESETS = {
    "default": [],
    "degradation_quick": ["experiment=degradation_quick"],
    "degradation": ["experiment=degradation"],
    "degradation_fashionmnist": ["experiment=degradation_fashionmnist"],
}
VAL = 16  # held-out images (the presets' 500 / 5,000 need that many fake images; sizes do not)
EPOCH = 1


def preset_sizes(name: str) -> dict:
    """The sizes of the composed preset the oracle runs at (what tests/knobs.md names)."""
    d = compose(PRESETS[name]).data
    return dict(
        dataset=d.name,
        side=input_side(d.name, d.resize),
        resize=d.resize,
        batch=d.batch_size,
        augment=d.augment,
    )


def write_dataset(root: Path, name: str, n_train: int) -> None:
    if name == "cifar10":
        write_cifar(root, name, n_train, 40)
    else:
        write_idx(
            root / {"fashionmnist": "FashionMNIST", "mnist": "MNIST"}[name] / "raw", n_train, 40
        )


def reference(x: torch.Tensor, resize: int | None, mean: list, std: list) -> torch.Tensor:
    """torchvision's reference: uint8 [N, C, H, W] -> resized (antialiased) -> normalised."""
    steps = []
    if resize is not None:
        steps.append(
            v2.Resize((resize, resize), interpolation=v2.InterpolationMode.BILINEAR, antialias=True)
        )
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    return v2.Compose(steps)(x)


def crops_and_flips(image: torch.Tensor, side: int) -> torch.Tensor:
    """Every zero-padded crop window of ``image`` and its mirror, via v2.Pad / crop / hflip."""
    padded = v2.Pad(CROP_PAD, fill=0)(image)
    windows = [
        v2.functional.crop(padded, top, left, side, side)
        for top in range(2 * CROP_PAD + 1)
        for left in range(2 * CROP_PAD + 1)
    ]
    return torch.stack(windows + [v2.functional.horizontal_flip(w) for w in windows])


@pytest.mark.usefixtures("skip_cifar_md5")
@pytest.mark.parametrize("preset", list(PRESETS))
def test_batches_equal_torchvisions_reference_at_the_presets_sizes(
    tmp_path: Path, preset: str
) -> None:
    sizes = preset_sizes(preset)
    bs = sizes["batch"]
    n_train = 5 * (
        (2 * bs + VAL + 7) // 5 + 1
    )  # two full batches and a partial one (CIFAR: 5 files)
    root = tmp_path / "data"
    write_dataset(root, sizes["dataset"], n_train)
    cfg = compose([*PRESETS[preset], f"data.root={root}", f"data.val_size={VAL}",
                   "data.train_subset=null", "data.test_subset=null"])  # fmt: skip
    dm = instantiate(cfg.data)
    dm.setup("cpu", seed=7)
    raw = dm._raw
    side = sizes["resize"] or sizes["side"]
    assert dm.image_shape[1:] == (side, side) and dm.batch_size == bs
    mean, std = list(cfg.data.mean), list(cfg.data.std)

    train_images = raw.train_images[:n_train][dm.train_indices]
    expected = reference(train_images, sizes["resize"], mean, std)
    order = sampling.train_order(len(train_images), bs, 7, EPOCH)
    batches = list(dm.train_batches(EPOCH))
    assert [len(y) for _, y in batches] == [
        len(order[i : i + bs]) for i in range(0, len(order), bs)
    ]
    flipped_or_moved = 0
    for (x, y), start in zip(batches, range(0, len(order), bs)):
        idx = order[start : start + bs]
        assert torch.equal(y, raw.train_labels[:n_train][dm.train_indices][idx])
        assert x.shape[1:] == (len(mean), side, side)
        if not sizes["augment"]:
            torch.testing.assert_close(x, expected[idx], atol=1e-5, rtol=0)
            continue
        for image, want in zip(x, expected[idx]):
            candidates = crops_and_flips(want, side)
            # a crop of the normalised image: padding is the normalised zero, as torchvision's
            # RandomCrop(padding) on the uint8 image then Normalize gives
            candidates = torch.where(
                crops_and_flips(torch.ones_like(want), side) == 0,
                reference(torch.zeros(1, len(mean), 1, 1, dtype=torch.uint8), None, mean, std),
                candidates,
            )
            gaps = (candidates - image).abs().flatten(1).amax(1)
            assert gaps.min() <= 1e-5, f"no crop/flip of the reference matches (gap {gaps.min()})"
            flipped_or_moved += int(gaps.argmin() != CROP_PAD * (2 * CROP_PAD + 1) + CROP_PAD)
    if sizes["augment"]:
        assert flipped_or_moved > len(order) // 2  # the augmentation really moved most images

    for split, images in (("val", raw.train_images[:n_train][dm.val_indices]),
                          ("test", raw.test_images)):  # fmt: skip
        want = reference(images, sizes["resize"], mean, std)
        got = list(dm.eval_batches(split))
        assert [len(x) for x, _ in got][0] == min(dm.eval_batch_size, len(images))
        torch.testing.assert_close(torch.cat([x for x, _ in got]), want, atol=1e-5, rtol=0)
