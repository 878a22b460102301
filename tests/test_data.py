"""Data layer: sources, splits, batching, augmentation and errors.

The datasets are written as small files in their real on-disk formats (IDX for MNIST and
Fashion-MNIST, pickled batches for CIFAR), so torchvision's own readers run on them.
"""

from __future__ import annotations

import errno
import gzip
import os
import pickle
import struct
from pathlib import Path

import pytest
import torch

from resnet_exp.data import (
    DataConfigError,
    DataModule,
    DatasetNotFound,
    DatasetUnreadable,
    sources,
)
from resnet_exp.data.facts import IDX_FILES, val_size_for
from resnet_exp.data.tensor_loader import crop_flip, pad_images
from resnet_exp.errors import UserError

N_TRAIN, N_TEST = 60, 20
SIZES = {
    "fashionmnist": (1, 28, 10),
    "mnist": (1, 28, 10),
    "cifar10": (3, 32, 10),
    "cifar100": (3, 32, 100),
}


# ------------------------------------------------------------------ writers of the real formats
def fake_images(n: int, c: int, size: int, seed: int) -> torch.Tensor:
    """Random uint8 images whose first two pixels spell their index (traceable through splits)."""
    x = torch.randint(0, 256, (n, c, size, size), generator=torch.Generator().manual_seed(seed))
    x = x.to(torch.uint8)
    x[:, 0, 0, 0] = torch.arange(n) % 256
    x[:, 0, 0, 1] = torch.arange(n) // 256
    return x


def image_ids(x: torch.Tensor) -> list[int]:
    return (x[:, 0, 0, 0].long() + 256 * x[:, 0, 0, 1].long()).tolist()


def labels_for(n: int, num_classes: int) -> torch.Tensor:
    return torch.arange(n) * 7 % num_classes


def idx_bytes(x: torch.Tensor) -> bytes:
    """IDX3 (magic 2051, big-endian dims) for images or IDX1 (magic 2049) for labels."""
    if x.ndim == 3:
        return struct.pack(">IIII", 2051, *x.shape) + x.numpy().tobytes()
    return struct.pack(">II", 2049, len(x)) + x.to(torch.uint8).numpy().tobytes()


def write_idx(folder: Path, n_train: int, n_test: int, gz: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        files = {
            f"{prefix}-images-idx3-ubyte": idx_bytes(fake_images(n, 1, 28, seed)[:, 0]),
            f"{prefix}-labels-idx1-ubyte": idx_bytes(labels_for(n, 10)),
        }
        for name, payload in files.items():
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(payload))
            else:
                (folder / name).write_bytes(payload)


def write_cifar(root: Path, name: str, n_train: int, n_test: int) -> None:
    num_classes = SIZES[name][2]
    key = "labels" if name == "cifar10" else "fine_labels"

    def batch(x: torch.Tensor, y: torch.Tensor) -> dict:
        d = {"data": x.reshape(len(x), -1).numpy(), key: y.tolist()}
        if name == "cifar100":
            d["coarse_labels"] = (y // 5).tolist()
        return d

    x, y = fake_images(n_train, 3, 32, 1), labels_for(n_train, num_classes)
    xt, yt = fake_images(n_test, 3, 32, 2), labels_for(n_test, num_classes)
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        step = n_train // 5
        files = {
            f"data_batch_{i + 1}": batch(x[i * step : (i + 1) * step], y[i * step : (i + 1) * step])
            for i in range(5)
        }
        files |= {
            "test_batch": batch(xt, yt),
            "batches.meta": {"label_names": [f"c{i}" for i in range(10)]},
        }
    else:
        folder = root / "cifar-100-python"
        files = {
            "train": batch(x, y),
            "test": batch(xt, yt),
            "meta": {"fine_label_names": [f"c{i}" for i in range(100)]},
        }
    folder.mkdir(parents=True)
    for fname, obj in files.items():
        (folder / fname).write_bytes(pickle.dumps(obj))


@pytest.fixture
def skip_cifar_md5(monkeypatch):
    """torchvision md5-checks CIFAR files against the real archives; ours need only exist."""
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))


@pytest.fixture
def no_debian(monkeypatch, tmp_path):
    """Point the Debian fallback at an empty folder, so 'missing' really is missing."""
    monkeypatch.setenv(sources.DEBIAN_FMNIST_ENV, str(tmp_path / "no-debian"))


def make_root(tmp_path: Path, name: str = "fashionmnist", n_train: int = N_TRAIN) -> Path:
    root = tmp_path / "data"
    if name in ("fashionmnist", "mnist"):
        write_idx(
            root / ("FashionMNIST" if name == "fashionmnist" else "MNIST") / "raw", n_train, N_TEST
        )
    else:
        write_cifar(root, name, n_train, N_TEST)
    return root


def make_dm(root: Path, seed: int = 0, **kw) -> DataModule:
    args = dict(name="fashionmnist", root=str(root), batch_size=8, val_size=10)
    dm = DataModule(**{**args, **kw})
    dm.setup(torch.device("cpu"), seed)
    return dm


def collect(batches) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*batches, strict=True)
    return torch.cat(xs), torch.cat(ys)


def unnormalise(x: torch.Tensor, dm: DataModule) -> torch.Tensor:
    mean = torch.tensor(dm.mean).view(1, -1, 1, 1)
    std = torch.tensor(dm.std).view(1, -1, 1, 1)
    return (x * std + mean).mul(255).round().to(torch.uint8)


# -------------------------------------------------------------------------------------- sources
@pytest.mark.parametrize("name", list(SIZES))
def test_each_dataset_loads_from_its_real_format(tmp_path, skip_cifar_md5, name):
    c, size, num_classes = SIZES[name]
    dm = make_dm(make_root(tmp_path, name), name=name, val_size=10)
    assert (dm.num_train, dm.num_val, dm.num_test) == (N_TRAIN - 10, 10, N_TEST)
    assert dm.source == "root"
    x, y = collect(dm.eval_batches("test"))
    assert x.shape == (N_TEST, c, size, size) and x.dtype == torch.float32
    assert torch.equal(y, labels_for(N_TEST, num_classes)) and y.dtype == torch.int64
    assert image_ids(unnormalise(x, dm)) == list(range(N_TEST))  # channel layout and order survive
    assert dm.describe()["image_shape"] == [c, size, size]


def test_debian_fallback_unpacks_gzipped_idx_into_root(tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    write_idx(debian, N_TRAIN, N_TEST, gz=True)
    monkeypatch.setenv(sources.DEBIAN_FMNIST_ENV, str(debian))
    root = tmp_path / "data"
    dm = make_dm(root, download=False)
    assert dm.source == "debian" and (dm.num_train + dm.num_val, dm.num_test) == (N_TRAIN, N_TEST)
    raw = root / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(sources.DATASETS["fashionmnist"].files)
    assert make_dm(root).source == "root"  # unpacked once, read directly afterwards


def test_failed_download_falls_back_to_debian(tmp_path, monkeypatch):
    import torchvision

    def offline(self):
        raise RuntimeError(
            "Error downloading: <urlopen error [Errno -2] Name or service not known>"
        )

    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "download", offline)
    debian = tmp_path / "debian"
    write_idx(debian, N_TRAIN, N_TEST, gz=True)
    monkeypatch.setenv(sources.DEBIAN_FMNIST_ENV, str(debian))
    assert make_dm(tmp_path / "data", download=True).source == "debian"


def test_download_without_network_gives_up_in_seconds(tmp_path, monkeypatch):
    """An offline resolver blocks a name lookup for far longer than any socket timeout (measured
    here: torchvision's download with a 20 s socket timeout still waited past 40 s); the download
    gives up after REACH_TIMEOUT_S and the Debian copy is used."""
    import socket
    import time

    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: time.sleep(30) or [])
    monkeypatch.setattr(sources, "REACH_TIMEOUT_S", 0.5)
    debian = tmp_path / "debian"
    write_idx(debian, N_TRAIN, N_TEST, gz=True)
    monkeypatch.setenv(sources.DEBIAN_FMNIST_ENV, str(debian))
    sources._dataset_class(sources.DATASETS["fashionmnist"])  # torchvision's import off the clock
    start = time.perf_counter()
    assert make_dm(tmp_path / "data", download=True).source == "debian"
    assert time.perf_counter() - start < 5


def test_val_size_null_holds_out_a_tenth_at_most_5000(tmp_path):
    """data.val_size=null (the default): data.train_subset=N alone gives a working split."""
    root = make_root(tmp_path)
    dm = make_dm(root, val_size=None)
    assert (dm.num_train, dm.num_val, dm.val_size) == (54, 6, 6)
    assert make_dm(root, val_size=None, train_subset=30).num_val == 3
    assert [val_size_for(None, n) for n in (3000, 50000, 60000)] == [300, 5000, 5000]
    assert val_size_for(0, 60000) == 0  # a number is used as given


def test_missing_dataset_error_names_root_files_and_fixes(tmp_path, no_debian):
    root = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFound) as e:
        make_dm(root)
    msg = str(e.value)
    assert isinstance(e.value, UserError) and "\n" not in msg
    for part in (
        str(root),
        "FashionMNIST/raw",
        "train-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        "data.download=true",
        "apt-get install dataset-fashion-mnist",
        "data.root=",
    ):
        assert part in msg
    with pytest.raises(DatasetNotFound, match=r"cifar-10-batches-py.*data_batch_1"):
        make_dm(root, name="cifar10")


def test_truncated_files_are_reported_not_crashed(tmp_path):
    root = make_root(tmp_path)
    f = root / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(DatasetUnreadable, match="train split.*FashionMNIST/raw"):
        make_dm(root)


@pytest.mark.parametrize("number", [errno.EACCES, errno.EIO])
def test_a_file_the_os_will_not_read_is_not_called_corrupt(tmp_path, monkeypatch, number):
    """Permission denied (root reads anything, so the OS's refusal is injected) or a disk error:
    the message names it and never tells the user to delete the files (they may be intact)."""
    import builtins

    root = make_root(tmp_path)
    locked = root / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte"
    real_open = builtins.open

    def refusing_open(file, *args, **kwargs):
        if str(file) == str(locked):
            raise OSError(number, os.strerror(number), str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    with pytest.raises(DatasetUnreadable) as refused:
        make_dm(root)
    message = str(refused.value)
    assert str(locked) in message and os.strerror(number) in message, message
    assert "corrupt" not in message and "delete them and" not in message
    assert "PosixPath" not in message


def test_labels_out_of_range_are_named_with_the_path_as_a_path(tmp_path):
    root = make_root(tmp_path)
    labels = root / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    data[8] = 10  # the first label of the IDX file (after its 8-byte header)
    labels.write_bytes(bytes(data))
    with pytest.raises(DataConfigError, match="image 0 has label 10") as refused:
        make_dm(root)
    assert f"data.root={root} " in str(refused.value) and "PosixPath" not in str(refused.value)


# --------------------------------------------------------------------------------------- splits
def test_validation_split_is_seeded_and_disjoint(tmp_path):
    root = make_root(tmp_path)
    a, b, c = (make_dm(root, seed=s) for s in (0, 0, 1))
    assert torch.equal(a.val_indices, b.val_indices) and not torch.equal(
        a.val_indices, c.val_indices
    )
    assert sorted(a.val_indices.tolist() + a.train_indices.tolist()) == list(range(N_TRAIN))
    val_x, _ = collect(a.eval_batches("val"))
    assert image_ids(unnormalise(val_x, a)) == a.val_indices.tolist()


def test_train_subset_uses_the_first_images(tmp_path):
    dm = make_dm(make_root(tmp_path), train_subset=30, val_size=5, batch_size=5)
    assert (dm.num_train, dm.num_val) == (25, 5)
    x, _ = collect(dm.train_batches(0))
    ids = image_ids(unnormalise(x, dm)) + dm.val_indices.tolist()
    assert sorted(ids) == list(range(30))


def test_val_size_zero_gives_no_val_batches(tmp_path):
    dm = make_dm(make_root(tmp_path), val_size=0)
    assert dm.num_val == 0 and list(dm.eval_batches("val")) == [] and dm.num_train == N_TRAIN


# ------------------------------------------------------------------------------------- batching
def test_epoch_order_is_deterministic_per_epoch_and_resumable(tmp_path):
    root = make_root(tmp_path)
    dm, fresh = make_dm(root, augment=True), make_dm(root, augment=True)
    e0, e0_again, e1 = (collect(dm.train_batches(e)) for e in (0, 0, 1))
    assert torch.equal(e0[0], e0_again[0]) and torch.equal(e0[1], e0_again[1])
    assert not torch.equal(e0[1], e1[1])
    e1_fresh = collect(fresh.train_batches(1))  # epoch 1 without epoch 0 first: resume
    assert torch.equal(e1[0], e1_fresh[0])
    later = collect(dm.train_batches(1, start_step=2))
    assert torch.equal(later[0], e1[0][2 * dm.batch_size :])
    assert sorted(e0[1].tolist()) == sorted(collect(dm.train_batches(5))[1].tolist())


def test_final_batch_of_one_is_dropped_but_other_partials_kept(tmp_path):
    root = make_root(tmp_path)
    dm = make_dm(root, val_size=10, batch_size=7)  # 50 = 7 * 7 + 1
    sizes = [len(y) for _, y in dm.train_batches(0)]
    assert sizes == [7] * 7 and dm.steps_per_epoch == 7
    dm = make_dm(root, val_size=10, batch_size=8)  # 50 = 6 * 8 + 2
    assert [len(y) for _, y in dm.train_batches(0)][-1] == 2 and dm.steps_per_epoch == 7
    assert sum(len(y) for _, y in dm.eval_batches("test")) == N_TEST


def test_ranks_get_disjoint_equal_shares(tmp_path):
    root = make_root(tmp_path)
    shares = []
    for rank in (0, 1):
        dm = DataModule(name="fashionmnist", root=str(root), batch_size=10, val_size=10)
        dm.setup("cpu", 0, rank=rank, world_size=2)
        x, _ = collect(dm.train_batches(0))
        shares.append(set(image_ids(unnormalise(x, dm))))
        assert dm.steps_per_epoch == 5 and x.shape[0] == 25  # 50 images, 5 per rank and step
    assert not shares[0] & shares[1]


def test_normalisation_uses_mean_and_std(tmp_path):
    dm = make_dm(make_root(tmp_path), mean=[0.5], std=[0.25])
    x, _ = collect(dm.eval_batches("test"))
    raw = fake_images(N_TEST, 1, 28, 2).float()
    assert torch.allclose(x, (raw / 255 - 0.5) / 0.25, atol=1e-5)


def test_gray_images_can_feed_a_three_channel_net(tmp_path):
    dm = make_dm(make_root(tmp_path), in_channels=3, mean=[0.3], std=[0.3])
    x, _ = next(iter(dm.train_batches(0)))
    assert x.shape[1] == 3 and torch.equal(x[:, 0], x[:, 2])


@pytest.mark.parametrize("augment", [False, True])
def test_torchvision_loader_matches_tensor_loader(tmp_path, augment):
    root = make_root(tmp_path)
    tensor = make_dm(root, augment=augment)
    tv = make_dm(root, augment=augment, loader="torchvision")
    for split in ("val", "test"):
        a, b = collect(tensor.eval_batches(split)), collect(tv.eval_batches(split))
        assert torch.allclose(a[0], b[0], atol=1e-5) and torch.equal(a[1], b[1])
    a, b = collect(tensor.train_batches(3)), collect(tv.train_batches(3))
    assert torch.equal(a[1], b[1]) and a[0].shape == b[0].shape  # same order and boundaries
    if not augment:
        assert torch.allclose(a[0], b[0], atol=1e-5)


def test_torchvision_loader_augmentation_ignores_worker_count(tmp_path):
    root = make_root(tmp_path)
    a = collect(make_dm(root, augment=True, loader="torchvision", num_workers=0).train_batches(2))
    b = collect(make_dm(root, augment=True, loader="torchvision", num_workers=1).train_batches(2))
    assert torch.equal(a[0], b[0])


@pytest.mark.parametrize("loader", ["tensor", "torchvision"])
def test_resize(tmp_path, loader):
    dm = make_dm(make_root(tmp_path), resize=40, augment=True, loader=loader)
    x, _ = next(iter(dm.train_batches(0)))
    assert x.shape[1:] == (1, 40, 40) and dm.image_shape == (1, 40, 40)
    assert collect(dm.eval_batches("test"))[0].shape == (N_TEST, 1, 40, 40)


# ---------------------------------------------------------------------------------- augmentation
def test_crop_flip_is_per_sample_and_exact():
    img = torch.arange(36, dtype=torch.uint8).view(1, 1, 6, 6) + 1  # no zeros: padding is visible
    padded = pad_images(img, 4)
    index = torch.zeros(4, dtype=torch.long)
    offsets = torch.tensor([[4, 4], [4, 4], [0, 0], [8, 8]])
    flips = torch.tensor([False, True, False, False])
    out = crop_flip(padded, index, offsets, flips, 6)
    assert out.shape == (4, 1, 6, 6)
    assert torch.equal(out[0], img[0])  # centre crop, no flip: identity
    assert torch.equal(out[1], img[0].flip(-1))  # centre crop, flipped: mirror image
    assert torch.equal(out[2, 0, 4:, 4:], img[0, 0, :2, :2]) and out[2, 0, :4].sum() == 0  # shifted
    assert torch.equal(out[3, 0, :2, :2], img[0, 0, 4:, 4:]) and out[3, 0, 2:].sum() == 0


def test_augmentation_differs_per_sample_in_a_batch(tmp_path):
    root = tmp_path / "data"
    raw = root / "FashionMNIST" / "raw"
    write_idx(raw, N_TRAIN, N_TEST)
    same = torch.arange(28 * 28).view(1, 28, 28).remainder(251).add(1).to(torch.uint8)
    (raw / "train-images-idx3-ubyte").write_bytes(
        idx_bytes(same.expand(N_TRAIN, 28, 28).contiguous())
    )
    dm = make_dm(root, augment=True, batch_size=32)
    x, _ = next(iter(dm.train_batches(0)))
    assert x.shape == (32, 1, 28, 28)
    distinct = {tuple(v.flatten().tolist()) for v in unnormalise(x, dm)}
    assert len(distinct) > 10  # 81 crops x 2 flips: a shared draw would give 1
    plain = make_dm(root, augment=False)
    assert (
        len(
            {
                tuple(v.flatten().tolist())
                for v in unnormalise(next(iter(plain.train_batches(0)))[0], plain)
            }
        )
        == 1
    )


# ---------------------------------------------------------------------------------------- errors
# Types and ranges of the data keys are checked by the config layer: tests/test_validation.py.
@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"val_size": N_TRAIN}, f"data.val_size={N_TRAIN}"),
        ({"train_subset": N_TRAIN + 1}, f"data.train_subset={N_TRAIN + 1}"),
        ({"train_subset": 20, "val_size": 19}, "between 0 and 18"),
    ],
)
def test_sizes_are_checked_against_the_data(tmp_path, kw, needle):
    with pytest.raises(DataConfigError, match=needle):
        make_dm(make_root(tmp_path), **kw)


def test_unknown_options_and_misuse():
    with pytest.raises(TypeError):
        DataModule(name="mnist", shuffle=True)
    dm = DataModule(name="mnist")
    assert dm.eval_batch_size == 256 and dm.image_shape == (1, 28, 28)
    with pytest.raises(RuntimeError, match="setup"):
        dm.train_batches(0)
    assert DataModule(name="mnist", root="~/x").root == Path.home() / "x"
    assert DataModule(name="mnist", root="rel").root == Path.cwd() / "rel"


# ------------------------------------------------------------------------------------ real data
def test_real_debian_fashion_mnist(tmp_path, monkeypatch):
    """The real copy from Debian's dataset-fashion-mnist (skipped where it is not installed)."""
    monkeypatch.delenv(sources.DEBIAN_FMNIST_ENV, raising=False)
    if not all((Path(sources.DEBIAN_FMNIST_DIR) / f"{f}.gz").is_file() for f in IDX_FILES):
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    raw = sources.load_dataset("fashionmnist", tmp_path, download=False)
    assert raw.source == "debian"
    assert raw.train_images.shape == (60000, 1, 28, 28) and raw.test_images.shape[0] == 10000
    assert torch.bincount(raw.train_labels).tolist() == [6000] * 10
    assert torch.bincount(raw.test_labels).tolist() == [1000] * 10
    dm = DataModule(name="fashionmnist", root=str(tmp_path), val_size=5000)
    dm.setup("cpu", 0)
    assert (dm.num_train, dm.num_val, dm.num_test, dm.source) == (55000, 5000, 10000, "root")
    x, _ = next(iter(dm.train_batches(0)))
    assert abs(x.mean().item()) < 0.2 and 0.8 < x.std().item() < 1.2  # config mean/std fit
