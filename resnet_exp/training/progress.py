"""What a person watching a fit sees: on a terminal one bar over the whole run's steps (its ETA
the run's: ``smoothing=0``) and one per evaluation; elsewhere a plain line every ``every_steps`` or
``LINE_EVERY_S``. The running loss is a host sync: read only when shown.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from resnet_exp.tracking.record import (
    EPOCH_S,
    IMG_S,
    LR,
    SPLIT_KEYS,
    TEST_ERR,
    TRAIN_ERR,
    TRAIN_LOSS,
    VAL_ERR,
    RunSummary,
)

log = logging.getLogger("resnet_exp")
# a thread lock, not tqdm's default multiprocessing one: a joblib sweep's job runs in a forked
# child that ends with os._exit, and each such semaphore was reported leaked at the sweep's end
tqdm.set_lock(threading.RLock())

LINE_EVERY_S = 30.0  # outside a terminal: at most this long between two progress lines


class Progress:
    """The bars or plain lines of one fit (``enabled``: trainer.progress, and DDP rank 0)."""

    def __init__(
        self, enabled: bool, epochs: int, steps_per_epoch: int, every_steps: int = 0,
        terminal: bool | None = None, clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        terminal = sys.stderr.isatty() if terminal is None else terminal
        self.bars, self.lines = enabled and terminal, enabled and not terminal
        self.epochs, self.total, self.every = epochs, epochs * steps_per_epoch, every_steps
        self.clock, self.bar = clock, tqdm(disable=True)  # the run's bar, while it shows
        self.epoch, self.last_lr, self.images, self.eval_s = 0, None, {}, 0.0
        self.start, self.start_step, self.shown, self.shown_images = clock(), 0, clock(), 0

    @contextlib.contextmanager
    def showing(self, step: int) -> Iterator[None]:
        """Around a fit resumed at ``step``: on a terminal, the run's bar, and log records
        written above it (tqdm.write) instead of through it."""
        self.start, self.start_step, self.shown = self.clock(), step, self.clock()
        self.bar = tqdm(total=self.total, initial=step, desc="train", unit="step", smoothing=0,
                        dynamic_ncols=True, disable=not self.bars)  # fmt: skip
        with logging_redirect_tqdm() if self.bars else contextlib.nullcontext(), self.bar:
            yield

    def start_epoch(self, epoch: int) -> None:  # what the epoch line counts starts afresh
        self.epoch, self.last_lr, self.images, self.eval_s = epoch, None, {}, 0.0
        self.bar.set_description(f"train, epoch {epoch}/{self.epochs}")

    def step(self, step: int, lr: float, images: int, running: Callable[[], tuple]) -> None:
        """After optimizer step ``step``, run at ``lr`` on ``images`` images; ``running()``:
        the epoch's mean loss and error % so far (a host sync, only when shown)."""
        self.last_lr, self.shown_images, now = lr, self.shown_images + images, self.clock()
        self.bar.update(1)  # nothing when off
        due = now - self.shown >= (1.0 if self.bars else LINE_EVERY_S)  # the bar's postfix: 1/s
        if not (self.bars and due or self.lines and (due or self.every and step % self.every == 0)):
            return
        loss, err = running()
        if self.bars:
            self.bar.set_postfix_str(f"loss {loss:.4f} err {err:.2f}% lr {lr:.4g}")
        else:
            rate = self.shown_images / max(now - self.shown, 1e-9)
            eta = (now - self.start) / max(step - self.start_step, 1) * (self.total - step)
            log.info("step %d/%d (epoch %d/%d) | loss %.4f err %.2f%% | lr %.4g | %.0f img/s | "
                     "ETA %s", step, self.total, self.epoch, self.epochs, loss, err, lr, rate,
                     tqdm.format_interval(eta))  # fmt: skip
        self.shown, self.shown_images = now, 0

    def evaluating(self, split: str, total: int | None, batches: Iterable) -> Iterator:
        """``batches`` of an evaluation of ``split`` (``total`` images, if known), each counted
        for the epoch line once evaluated; under a bar on a terminal."""
        start, self.images[split] = self.clock(), 0
        with tqdm(total=total, desc=split, unit="img", leave=False, dynamic_ncols=True,
                  disable=not self.bars) as bar:  # fmt: skip
            for batch in batches:
                yield batch
                self.images[split] += len(batch[1])
                bar.update(len(batch[1]))
        self.eval_s += self.clock() - start

    def epoch_line(self, row: dict) -> str:
        """The epoch's one line: its metrics and images per split, the lr range it ran, its time."""
        lr = f"{row[LR]:.4g}"
        if self.last_lr is not None and f"{self.last_lr:.4g}" != lr:
            lr += f" -> {self.last_lr:.4g}"
        n = {"train": round(row[IMG_S] * row[EPOCH_S]), **self.images}  # images of each split
        train = f"train loss {row[TRAIN_LOSS]:.4f} err {row[TRAIN_ERR]:.2f}% ({n['train']} img)"
        parts = [f"epoch {row['epoch']}/{self.epochs}", train]
        parts += [f"{split} err {row[err]:.2f}% ({n.get(split, '?')} img)"
                  for split, (_, err) in SPLIT_KEYS.items() if err in row]  # fmt: skip
        evaluated = f" + eval {self.eval_s:.1f}s" if self.images else ""
        parts += [f"lr {lr}", f"{row[EPOCH_S]:.1f}s{evaluated}", f"{row[IMG_S]:.0f} img/s"]
        return " | ".join(parts)


def log_result(summary: RunSummary, run_dir: Path) -> None:
    """A run's last lines: its result and where its record is (timm ends on "*** Best metric")."""
    best, final = summary.best or {}, summary.final or {}
    by, key = ("val", VAL_ERR) if VAL_ERR in best else ("train", TRAIN_ERR)  # as the loop picks
    parts = [f"best {by} err {best[key]:.2f}% (epoch {best['epoch']})"] if best else []
    parts += [f"test err at best {by} {best[TEST_ERR]:.2f}%"] if TEST_ERR in best else []
    parts += [f"final train err {final[TRAIN_ERR]:.2f}%"] if TRAIN_ERR in final else []
    parts.append(f"wall time {tqdm.format_interval(summary.wall_time_s or 0)}")
    log.info("result (%s): %s", summary.status, " | ".join(parts))
    log.info("record: %s", run_dir)
