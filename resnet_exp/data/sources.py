"""Where the images come from: torchvision's dataset classes, its download, or Debian's package.

Each split is read once into uint8 ``[N, C, H, W]`` and int64 labels from the torchvision class's
arrays (no PIL decode). Missing files: torchvision's download (under timeouts, so an offline
machine gives up in seconds), then Debian's copy, then a :class:`DatasetNotFound`.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import socket
import threading
import urllib.parse
import urllib.request
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
#: Seconds the download's server (name lookup and connection) has to answer before we give up.
REACH_TIMEOUT_S = 5.0
#: Seconds any single network operation of torchvision's download may block.
DOWNLOAD_TIMEOUT_S = 10.0

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
    info, root = DATASETS[name], Path(root)
    source = fetch_missing(name, root, download)
    (train_x, train_y), (test_x, test_y) = (_read_split(info, root, t) for t in (True, False))
    log.info(
        "%s: %d train / %d test images from %s (%s)", name, len(train_y), len(test_y), root, source
    )
    return RawData(train_x, train_y, test_x, test_y, source)


def fetch_missing(name: str, root: Path, download: bool) -> str:
    """Make ``name``'s files present under ``root`` (torchvision download, then Debian's package)
    without reading them; returns where they came from, or raises :class:`DatasetNotFound`."""
    info, root = DATASETS[name], Path(root)
    if not info.missing_files(root):
        return "root"
    notes = ["download was not attempted (data.download=false)"]
    if download:
        error = _try_torchvision_download(info, root)
        if not info.missing_files(root):
            return "download"
        notes = [f"torchvision's download failed ({error})"]
        log.info("%s: %s", name, notes[0])
    if name == "fashionmnist":
        error = _try_debian_fmnist(info, root)
        if error is None:
            return "debian"
        notes.append(error)
    raise DatasetNotFound(_not_found_message(info, root, notes))


def _dataset_class(info: DatasetInfo) -> type:
    import torchvision.datasets  # deferred: importing torchvision takes seconds

    return getattr(torchvision.datasets, info.class_name)


def _try_torchvision_download(info: DatasetInfo, root: Path) -> str | None:
    """Ask torchvision to download; returns a short error text instead of raising."""
    cls = _dataset_class(info)
    log.info("%s: files missing under %s; trying torchvision's download", info.name, root)
    unreachable = _unreachable(cls)
    if unreachable:
        return unreachable
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        cls(str(root), train=True, download=True)
        return None
    except Exception as e:  # any failure (DNS, HTTP, checksum, disk) means: try the next source
        return " ".join(str(e).split())[:300] or type(e).__name__
    finally:
        socket.setdefaulttimeout(previous)


def _unreachable(cls: type) -> str | None:
    """Why the first server ``cls`` downloads from (or urllib's proxy for it) does not accept a
    connection within :data:`REACH_TIMEOUT_S`; None when it does. The probe runs in a daemon
    thread because a name lookup on a machine without network can block far longer."""
    url = urllib.parse.urlsplit((getattr(cls, "mirrors", None) or [getattr(cls, "url", "")])[0])
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and not urllib.request.proxy_bypass(url.hostname or ""):
        url = urllib.parse.urlsplit(proxy)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=REACH_TIMEOUT_S).close()
            outcome.append(None)
        except OSError as e:
            outcome.append(f"cannot reach {host}: {e}")

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(REACH_TIMEOUT_S)
    return outcome[0] if outcome else f"no answer from {host} within {REACH_TIMEOUT_S:g} s"


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
        for name, path in sources.items():  # each file via a temporary one: never half a file
            with atomic_path(dest / name) as tmp, open(tmp, "wb") as out, gzip.open(path) as inp:
                shutil.copyfileobj(inp, out, length=1 << 20)
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        return f"unpacking Debian's copy from {src} into {dest} failed ({e})"
    log.info("fashionmnist: unpacked Debian's copy from %s into %s", src, dest)
    return None


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
    if images.dtype != torch.uint8 or tuple(images.shape) != (len(labels), *shape):
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
    fixes = ["let torchvision download it: data.download=true (the default) on a machine online"]
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
