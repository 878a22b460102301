"""Value checks that types cannot express, run before anything is built or written.

Each failure names the key, the bad value and what is allowed, so a typo costs seconds, not a run.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from omegaconf import DictConfig

from resnet_exp.errors import UserError


class InvalidConfig(UserError, ValueError):
    """A config value outside its valid range."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidConfig(message)


def validate(cfg: DictConfig, run_dir: Path | None = None) -> None:
    """Raise :class:`InvalidConfig` for the first out-of-range value (imports no torch: fast)."""
    t, d, o = cfg.trainer, cfg.data, cfg.optimizer
    _check(t.epochs >= 1, f"trainer.epochs={t.epochs}: train for at least 1 epoch.")
    _check(
        str(t.precision) in ("32", "bf16", "16", "auto"),
        f"trainer.precision={t.precision!r} is not a precision choice; valid: 32, bf16, 16, auto.",
    )
    for key in ("channels_last", "compile"):
        value = t.get(key)
        _check(
            isinstance(value, bool) or value == "auto",
            f"trainer.{key}={value!r} is not a choice; valid: true, false, auto.",
        )
    _check(
        t.checkpoint_every_steps >= 0,
        f"trainer.checkpoint_every_steps={t.checkpoint_every_steps}: use 0 (epoch ends only) "
        "or a positive step interval.",
    )
    _check(
        t.log_every_steps is None or t.log_every_steps >= 0,
        f"trainer.log_every_steps={t.log_every_steps}: use null (about 100 rows per run), 0 "
        "(epoch rows only) or a positive step interval.",
    )
    _check(
        t.response_images >= 0,
        f"trainer.response_images={t.response_images}: use 0 (no layer responses) or a count.",
    )
    _check(
        t.num_threads is None or t.num_threads >= 1,
        f"trainer.num_threads={t.num_threads}: use null (torch's default) or >= 1.",
    )
    _check(d.batch_size >= 1, f"data.batch_size={d.batch_size}: a batch holds at least 1 image.")
    _check(
        d.eval_batch_size is None or d.eval_batch_size >= 1,
        f"data.eval_batch_size={d.eval_batch_size}: use null or >= 1.",
    )
    _check(d.val_size >= 0, f"data.val_size={d.val_size}: use 0 (no validation split) or more.")
    _check(
        d.train_subset is None or d.train_subset >= 1,
        f"data.train_subset={d.train_subset}: use null (all images) or a count >= 1.",
    )
    _check(
        d.test_subset is None or d.test_subset >= 1,
        f"data.test_subset={d.test_subset}: use null (the whole test set) or a count >= 1.",
    )
    _check(d.resize is None or d.resize >= 1, f"data.resize={d.resize}: use null or a size >= 1.")
    _check(
        d.loader in ("tensor", "torchvision"),
        f"data.loader={d.loader!r} is not a loader choice; valid: tensor, torchvision.",
    )
    _check(d.num_workers >= 0, f"data.num_workers={d.num_workers}: use 0 or more.")
    lr = o.get("lr")
    _check(
        lr is not None and lr > 0,
        f"optimizer.lr={lr}: the learning rate must be a positive number, e.g. 0.1 for SGD.",
    )
    wd = o.get("weight_decay", 0.0)
    _check(wd >= 0, f"optimizer.weight_decay={wd}: must be >= 0.")
    momentum = o.get("momentum")
    _check(
        momentum is None or 0 <= momentum < 1,
        f"optimizer.momentum={momentum}: must be in [0, 1).",
    )
    mode = cfg.logger.get("mode")
    _check(
        mode is None or mode in ("auto", "online", "offline", "disabled"),
        f"logger.mode={mode!r} is not a mode; valid: auto, online, offline, disabled.",
    )
    _validate_more(cfg, run_dir)


DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def _validate_more(cfg: DictConfig, run_dir: Path | None) -> None:
    """Checks of the reliability issue: device name, sizes, schedule, shortcut, resume, run dir."""
    t, d = cfg.trainer, cfg.data
    device = str(t.device)
    base, _, index = device.partition(":")
    _check(
        base in DEVICE_CHOICES and (not index or (base == "cuda" and index.isdigit())),
        f"trainer.device={device!r} is not a device choice; valid: {', '.join(DEVICE_CHOICES)} "
        "(cuda:N picks a GPU).",
    )
    if d.train_subset is not None:
        _check(
            d.val_size <= d.train_subset - 2,
            f"data.val_size={d.val_size} leaves {d.train_subset - d.val_size} of the "
            f"data.train_subset={d.train_subset} images to train on; use a val_size between 0 "
            f"and {max(d.train_subset - 2, 0)}.",
        )
    shortcut = cfg.model.get("shortcut")
    _check(
        shortcut is None or str(shortcut).upper() in ("A", "B", "C"),
        f"model.shortcut={shortcut!r} is not a shortcut option; valid: A (zero-pad identity), "
        "B (projection where the shape changes), C (projection everywhere).",
    )
    s = cfg.scheduler
    milestones = s.get("milestones")
    if milestones is not None:
        values = list(milestones)
        _check(
            all(0 < m < 1 for m in values) and values == sorted(values),
            f"scheduler.milestones={values}: milestones are increasing fractions of training "
            "strictly between 0 and 1, e.g. [0.5, 0.75].",
        )
    gamma = s.get("gamma")
    _check(gamma is None or 0 < gamma <= 1, f"scheduler.gamma={gamma} must be in (0, 1].")
    warmup = s.get("warmup_steps", 0) or 0
    _check(warmup >= 0, f"scheduler.warmup_steps={warmup}: use 0 (no warm-up) or more.")
    factor = s.get("warmup_factor")
    _check(
        factor is None or 0 < factor <= 1,
        f"scheduler.warmup_factor={factor}: the warm-up starts at this fraction of the lr; "
        "use a value in (0, 1].",
    )
    min_factor = s.get("min_factor")
    _check(
        min_factor is None or 0 <= min_factor <= 1,
        f"scheduler.min_factor={min_factor} must be in [0, 1].",
    )
    resume = str(t.resume)
    if resume not in ("auto", "never"):
        path = Path(os.path.expanduser(resume))
        _check(
            path.is_file(),
            f"trainer.resume={resume!r}: no checkpoint file there. Give the path of a "
            "checkpoints/last.pt written by resnet_exp, or use trainer.resume=auto (continue "
            "this run directory's own checkpoint) or never.",
        )
    if run_dir is not None:
        _check_writable(Path(run_dir))


def _check_writable(run_dir: Path) -> None:
    """The run directory must take files (Hydra made it; a read-only mount would fail late)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    except OSError as error:
        raise InvalidConfig(
            f"hydra.run.dir={str(run_dir)!r} cannot be written to ({error.strerror or error}); "
            "point hydra.run.dir (or hydra.sweep.dir) at a writable folder."
        ) from None
