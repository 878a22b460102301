"""Where the images come from: torchvision's dataset classes, its download, or Debian's package.

Each split is read once into a uint8 tensor ``[N, C, H, W]`` plus int64 labels, straight from the
arrays the torchvision classes hold (``.data`` / ``.targets``), so no image is decoded through
PIL. Nothing but the dataset's own files is ever written to disk.

When files are missing under ``root`` the attempts are: torchvision's download (only with
``download=True``, under a socket timeout so an offline machine fails in seconds, not minutes);
then, for Fashion-MNIST, the real copy that Debian's ``dataset-fashion-mnist`` package installs (a
local copy, so it is used whatever ``download`` says); then a :class:`DatasetNotFound` saying
exactly which files go where.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import torch

from resnet_exp.atomic import atomic_path
from resnet_exp.data.errors import DatasetNotFound, DatasetUnreadable
from resnet_exp.data.facts import DATASETS, DatasetInfo
from resnet_exp.errors import os_limit

log = logging.getLogger(__name__)

#: Where Debian's ``dataset-fashion-mnist`` puts the four gzipped IDX files.
DEBIAN_FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
#: Environment variable that overrides :data:`DEBIAN_FMNIST_DIR` (tests, other distributions).
DEBIAN_FMNIST_ENV = "RESNET_EXP_DEBIAN_FMNIST"
#: Seconds any single network operation of torchvision's download may block.
DOWNLOAD_TIMEOUT_S = 20.0

__all__ = ["DATASETS", "DatasetInfo", "RawData", "fetch_missing", "load_dataset"]


@dataclass
class RawData:
    """Both splits as CPU tensors, and where they came from ('root', 'download' or 'debian')."""

    train_images: torch.Tensor  # uint8 [N, C, H, W]
    train_labels: torch.Tensor  # int64 [N]
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str


def debian_fmnist_dir() -> Path:
    """The Debian Fashion-MNIST folder, honouring the environment override."""
    return Path(os.environ.get(DEBIAN_FMNIST_ENV) or DEBIAN_FMNIST_DIR)


def load_dataset(name: str, root: Path, download: bool) -> RawData:
    """Read both splits of ``name`` from ``root``, fetching missing files as described above."""
    info = DATASETS[name]
    root = Path(root)
    source = fetch_missing(name, root, download)
    train_x, train_y = _read_split(info, root, train=True)
    test_x, test_y = _read_split(info, root, train=False)
    log.info(
        "%s: %d train / %d test images from %s (%s)", name, len(train_y), len(test_y), root, source
    )
    return RawData(train_x, train_y, test_x, test_y, source)


def fetch_missing(name: str, root: Path, download: bool) -> str:
    """Make ``name``'s files present under ``root`` (torchvision download, then Debian's package)
    without reading them; returns where they came from, or raises :class:`DatasetNotFound`."""
    info = DATASETS[name]
    root = Path(root)
    source = "root"
    notes: list[str] = []
    if info.missing_files(root):
        if download:
            error = _try_torchvision_download(info, root)
            if not info.missing_files(root):
                source = "download"
            else:
                notes.append(f"torchvision's download failed ({error})")
        else:
            notes.append("download was not attempted (data.download=false)")
        if info.missing_files(root) and name == "fashionmnist":
            error = _try_debian_fmnist(info, root)
            if error is None:
                source = "debian"
            else:
                notes.append(error)
        if info.missing_files(root):
            raise DatasetNotFound(_not_found_message(info, root, notes))
    return source


def _dataset_class(info: DatasetInfo) -> type:
    import torchvision.datasets  # deferred: importing torchvision takes seconds

    return getattr(torchvision.datasets, info.class_name)


def _try_torchvision_download(info: DatasetInfo, root: Path) -> str | None:
    """Ask torchvision to download; returns a short error text instead of raising."""
    cls = _dataset_class(info)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        log.info("%s: files missing under %s; trying torchvision's download", info.name, root)
        cls(str(root), train=True, download=True)
        return None
    except Exception as e:  # any failure (DNS, HTTP, checksum, disk) means: try the next source
        return " ".join(str(e).split())[:300] or type(e).__name__
    finally:
        socket.setdefaulttimeout(previous)


def _try_debian_fmnist(info: DatasetInfo, root: Path) -> str | None:
    """Unpack Debian's gzipped copy into ``root/FashionMNIST/raw``; returns why not, or None."""
    src = debian_fmnist_dir()
    sources = {f: src / f"{f}.gz" for f in info.missing_files(root)}
    absent = [p.name for p in sources.values() if not p.is_file()]
    if absent:
        return f"Debian's copy is not available ({src} lacks {', '.join(absent)})"
    dest = info.folder_path(root)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for name, path in sources.items():
            _gunzip_atomic(path, dest / name)
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        return f"unpacking Debian's copy from {src} into {dest} failed ({e})"
    log.info("fashionmnist: unpacked Debian's copy from %s into %s", src, dest)
    return None


def _gunzip_atomic(src: Path, dest: Path) -> None:
    """Decompress into a temporary file next to ``dest``, then rename: never half a file."""
    with atomic_path(dest) as tmp, open(tmp, "wb") as out, gzip.open(src, "rb") as inp:
        shutil.copyfileobj(inp, out, length=1 << 20)


def _read_split(info: DatasetInfo, root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    cls = _dataset_class(info)
    split = "train" if train else "test"
    folder = info.folder_path(root)
    try:
        ds = cls(str(root), train=train, download=False)
        data = ds.data
        if isinstance(data, torch.Tensor):  # MNIST-style: uint8 [N, H, W]
            images = data.unsqueeze(1) if data.ndim == 3 else data.permute(0, 3, 1, 2)
        else:  # CIFAR-style: numpy uint8 [N, H, W, C]
            images = torch.from_numpy(data).permute(0, 3, 1, 2)
        images = images.contiguous()
        labels = torch.as_tensor(ds.targets, dtype=torch.int64).clone()
    except Exception as e:  # torchvision reports bad files as RuntimeError, ValueError, pickle...
        where = f"The {split} split of dataset '{info.name}' could not be read from {folder}"
        if isinstance(e, OSError) and e.errno is not None:  # the OS refused: the files may be
            raise DatasetUnreadable(  # intact, and deleting them would lose good data
                f"{where}: {os_limit(e)} on {e.filename or folder}. The files may be intact; do "
                "not delete them: make them readable (permissions, owner, the disk), or point "
                "data.root at a readable copy."
            ) from e
        reason = " ".join(str(e).split()) or type(e).__name__
        raise DatasetUnreadable(
            f"{where}: {reason}. The files there look truncated or corrupt; delete them and fetch "
            "them again (data.download=true), or point data.root at a folder with intact files."
        ) from e
    shape = (info.channels, info.size, info.size)
    if (
        images.dtype != torch.uint8
        or tuple(images.shape[1:]) != shape
        or len(images) != len(labels)
    ):
        raise DatasetUnreadable(
            f"The {split} split of dataset '{info.name}' in {folder} holds "
            f"{tuple(images.shape)} {images.dtype} images and {len(labels)} labels; expected "
            f"uint8 images of shape [N, {', '.join(map(str, shape))}] and one label per image. "
            "Replace the files with the original dataset."
        )
    return images, labels


def _not_found_message(info: DatasetInfo, root: Path, notes: list[str]) -> str:
    folder = info.folder_path(root)
    missing = ", ".join(info.missing_files(root))
    cls = _dataset_class(info)
    if info.name in ("fashionmnist", "mnist"):
        where = (
            f"the uncompressed IDX files {', '.join(info.files)} in {folder}/ (missing: {missing})"
        )
    else:
        url = getattr(cls, "url", "")
        where = (
            f"the folder {folder}/ holding {', '.join(info.files)} (missing: {missing}), i.e. the "
            f"unpacked {getattr(cls, 'filename', 'archive')}" + (f" from {url}" if url else "")
        )
    fixes = ["set data.download=true to let torchvision download it"]
    if info.name == "fashionmnist":
        fixes.append(
            "install Debian's copy with `apt-get install dataset-fashion-mnist` (looked in "
            f"{debian_fmnist_dir()}; override with {DEBIAN_FMNIST_ENV}=<folder>)"
        )
    fixes.append(f"or set data.root=<folder> to a folder that already holds {info.folder}/")
    tried = f" Tried: {'; '.join(notes)}." if notes else ""
    return (
        f"Dataset '{info.name}' was not found under data.root={root}. torchvision's "
        f"{info.class_name} expects {where}.{tried} To fix: {'; '.join(fixes)}."
    )
