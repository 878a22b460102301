"""A job is known by what it computes (SPEC §8): the one rule for "the same run".

A job's **identity** (:func:`identity_key`) is its resolved config without the machine-only keys
(:data:`MACHINE_KEYS`), as sorted JSON, so how a value was written never changes it. Its
**configuration** (:func:`configuration`) is the same without the seed: replicates share it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from resnet_exp.tracking.record import COMPLETED, HYDRA_CONFIG, HYDRA_DIR, RunRecord

#: Keys that cannot change what a job computes, and why; a key in none of these is identity.
MACHINE_KEYS: dict[str, str] = {
    "data.root": "where the files lie; the same files give the same numbers",
    "data.download": "whether missing files may be fetched; the files are the same",
    "data.num_workers": "loader processes; each sample's augmentation is seeded from (seed, "
    "epoch, index), not the worker (data/torchvision_loader.py); the tensor loader has none",
    "trainer.num_threads": "CPU threads (SPEC §8); a run's thread count is fixed for its life",
    "trainer.resume": "how an attempt continues; a resumed run is bit-identical (SPEC §5)",
    "trainer.progress": "progress bars on the terminal",
    "trainer.debug_checksum": "logs a hash of the final weights; changes none of them",
    "logger": "where and how W&B is told (mode, project, entity, dir, tags, notes, ...)",
    "data.image_size": "gone: it could only repeat data.resize or the dataset's size; older "
    "sweeps' configs hold it and keep their identity",
}
#: Replicates of one configuration differ only in these.
SEED_KEYS = ("seed",)
_RULE = ("~identity", 2)  # marks a key of this rule (keys stored before it lack it)
_DEVICE_INDEX = re.compile(r"^(cuda|xpu|mps):\d+$")  # the device index is the machine's: cuda:1
READABLE = 80  # a job folder's name, hash included
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]+")


def is_machine_key(dotted: str) -> bool:
    return any(dotted == k or dotted.startswith(k + ".") for k in MACHINE_KEYS)


def flatten(config: dict[str, Any]) -> dict[str, Any]:
    """The identity's keys and canonical values: ``{"optimizer.lr": 0.1, ...}``."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if is_machine_key(prefix):
            return
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        else:
            flat[prefix] = _canonical(prefix, value)

    walk("", {k: v for k, v in config.items() if k != "hydra"})
    return flat


def _canonical(key: str, value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_canonical(key, v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if key == "trainer.device" and isinstance(value, str):
        return _DEVICE_INDEX.sub(r"\1", value)
    if isinstance(value, str) and len(value) > 1 and value.endswith("/"):  # a path: dir/ = dir
        return value.rstrip("/") or "/"
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def identity_key(config: dict[str, Any]) -> str:
    """The identity of a run whose resolved config (plain dicts) is ``config``."""
    return json.dumps(dict([_RULE, *flatten(config).items()]), sort_keys=True)


def short_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]


def parse_key(key: str | None) -> dict[str, Any] | None:
    """An identity's keys and values; None for no key or one that is not a JSON object."""
    try:
        found = json.loads(key) if key else None
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def is_current(key: str | None) -> bool:
    """Whether ``key`` was made by this rule (not by the code before it)."""
    found = parse_key(key)
    return found is not None and found.get(_RULE[0]) == _RULE[1]


def configuration(key: str) -> str:
    """The configuration of an identity: its hash without the seed (replicates share it)."""
    flat = {k: v for k, v in (parse_key(key) or {}).items() if k not in SEED_KEYS}
    return short_hash(json.dumps(flat, sort_keys=True))


def same_key(saved: str | None, key: str) -> bool:
    """Whether a stored key is this run's. A key stored before this rule (a checkpoint or a
    ``summary.json`` of an older sweep) is compared as then: each of its keys, where this run's
    resolved values say the same (keys it did not have were free then)."""
    if saved is None or saved == key or is_current(saved):
        return saved == key
    old, new = parse_key(saved), parse_key(key) or {}
    return old is not None and all(k in new and new[k] == v for k, v in old.items())


def key_difference(saved: str, key: str) -> str:
    """What differs between two keys: "<key>=<value> there, <value> now; ..."."""
    old, new = parse_key(saved), parse_key(key)
    if old is None or new is None:
        return ""
    if not is_current(saved):  # an older key: only its own keys were compared
        new = {k: v for k, v in new.items() if k in old}
    return "; ".join(
        f"{k}={old.get(k, '(unset)')} there, {new.get(k, '(unset)')} now"
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k) and k != _RULE[0]
    )


def identity_of_node(node: Any) -> str | None:
    """The identity of an OmegaConf config (Hydra's ``.hydra/config.yaml`` or a composed one):
    machine keys dropped before resolving (a data.root from an unset variable is no error here);
    None where the rest does not resolve."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    _register_facts()
    try:
        copy = OmegaConf.create(OmegaConf.to_container(node, resolve=False))
        for key in ("hydra", *MACHINE_KEYS):
            parent, _, leaf = key.rpartition(".")
            holder = OmegaConf.select(copy, parent) if parent else copy
            if isinstance(holder, type(copy)) and leaf in holder:
                del holder[leaf]
        return identity_key(OmegaConf.to_container(copy, resolve=True))
    except (OmegaConfBaseException, ValueError, TypeError, KeyError):
        return None


def _register_facts() -> None:
    """The dataset facts ``conf/`` interpolates (``${resnet_exp.dataset:...}``) resolve here too."""
    from omegaconf import OmegaConf

    from resnet_exp.data.facts import dataset_fact

    if not OmegaConf.has_resolver("resnet_exp.dataset"):
        OmegaConf.register_new_resolver("resnet_exp.dataset", dataset_fact)


_CACHE: dict[tuple[str, float, float], str | None] = {}


def identity_of_folder(job_dir: Path) -> str | None:
    """A job folder's identity: ``summary.json``'s key where this rule wrote it, else computed
    from Hydra's ``.hydra/config.yaml`` (a folder of an older sweep); None if neither tells."""
    stored = RunRecord(job_dir).read_summary()
    if stored is not None and is_current(stored.config_key):
        return stored.config_key
    config = job_dir / HYDRA_DIR / HYDRA_CONFIG
    try:
        stat = config.stat()
    except OSError:
        return None
    cached = (str(config), stat.st_mtime, stat.st_size)
    if cached not in _CACHE:
        from omegaconf import OmegaConf

        try:
            _CACHE[cached] = identity_of_node(OmegaConf.load(config))
        except Exception:  # damaged YAML: the folder's identity is unknown, never an error
            _CACHE[cached] = None
    return _CACHE[cached]


def job_folders(sweep_dir: Path) -> list[Path]:
    """The sweep's job folders (one level down, as Hydra makes them), oldest first."""
    try:
        found = [p for p in sweep_dir.iterdir() if (p / HYDRA_DIR).is_dir()]
    except OSError:
        return []
    return sorted(found, key=_mtime)


def _mtime(path: Path) -> float:
    try:
        return (path / HYDRA_DIR).stat().st_mtime
    except OSError:
        return 0.0


def index(sweep_dir: Path) -> dict[str, Path]:
    """Each identity held in ``sweep_dir`` and its folder (:func:`pick` where several hold one)."""
    found: dict[str, list[Path]] = {}
    for folder in job_folders(sweep_dir):
        key = identity_of_folder(folder)
        if key is not None:
            found.setdefault(key, []).append(folder)
    return {key: pick(folders) for key, folders in found.items()}


def pick(folders: list[Path]) -> Path | None:
    """Of folders holding one identity: the completed one, else the latest written."""
    folders = sorted(folders, key=_mtime)
    done = [d for d in folders if getattr(RunRecord(d).read_summary(), "status", "") == COMPLETED]
    return (done or folders or [None])[-1]


MODEL_KEYS = ("model", "model/block", "model/depth", "model.block", "model.depth")


def override_key(override: str) -> str:
    """``+model/depth@x=8`` -> ``model/depth``: the key or group, as Hydra's ``key_or_group``."""
    return str(override).lstrip("+~").split("=", 1)[0].split("@", 1)[0]


def naming_overrides(overrides: Iterable[str]) -> list[str]:
    """The overrides that may change what a job computes, in their order."""
    return [str(o) for o in overrides if not is_machine_key(override_key(o).replace("/", "."))]


def distinguishing(overrides: Iterable[str], jobs: Iterable[Iterable[str]]) -> list[str]:
    """The job's naming overrides that not every job of the sweep (``jobs``) has; all of them
    when the sweep holds one job (or is unknown)."""
    mine = naming_overrides(overrides)
    others = [set(naming_overrides(j)) for j in jobs]
    shared = set.intersection(*others) if len(others) > 1 else set()
    return [o for o in mine if o not in shared]


def folder_name(overrides: Iterable[str], key: str, jobs: Iterable[Iterable[str]] = ()) -> str:
    """``plain-56_seed=3-<hash>``: what sets the job apart in its sweep, the model's part first
    (as ``<block>-<depth>``), at most :data:`READABLE` characters with the identity's hash last."""
    kept = sorted(distinguishing(overrides, jobs), key=lambda o: override_key(o) not in MODEL_KEYS)
    model = [o.split("=", 1)[1] for o in kept if override_key(o) in MODEL_KEYS]
    rest = [o for o in kept if override_key(o) not in MODEL_KEYS]
    text = "_".join(filter(None, ["-".join(model), *sorted(rest)]))
    readable = _UNSAFE.sub("_", text).strip("._-")[: READABLE - 9].rstrip("._-,")
    return f"{readable or 'default'}-{short_hash(key)}"
