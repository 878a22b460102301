"""Value checks that types cannot express, run before anything is built or written.

Each failure names the key, the bad value and what is allowed, so a typo costs seconds, not a run.
"""

from __future__ import annotations

from omegaconf import DictConfig

from resnet_exp.errors import UserError


class InvalidConfig(UserError, ValueError):
    """A config value outside its valid range."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidConfig(message)


def validate(cfg: DictConfig) -> None:
    """Raise :class:`InvalidConfig` for the first out-of-range value."""
    t, d, o = cfg.trainer, cfg.data, cfg.optimizer
    _check(t.epochs >= 1, f"trainer.epochs={t.epochs}: train for at least 1 epoch.")
    _check(
        str(t.precision) in ("32", "bf16", "16"),
        f"trainer.precision={t.precision!r} is not a precision choice; valid: 32, bf16, 16.",
    )
    _check(
        t.checkpoint_every_steps >= 0,
        f"trainer.checkpoint_every_steps={t.checkpoint_every_steps}: use 0 (epoch ends only) "
        "or a positive step interval.",
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
