"""The training loop, in timm's shape: :meth:`Trainer.fit` runs :meth:`Trainer.train_one_epoch`
and :meth:`Trainer.evaluate` per epoch and records each epoch's row, best and checkpoints. No host
sync inside an epoch: sums stay on the device (:class:`~resnet_exp.training.epoch_sums.EpochSums`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from resnet_exp.tracking.record import (
    BEST_PT,
    COMPLETED,
    DIVERGED,
    LAST_PT,
    LR,
    PRUNED,
    SPLIT_KEYS,
    TRAIN_ERR,
    TRAIN_LOSS,
    VAL_ERR,
    RunRecord,
)
from resnet_exp.training.checkpoint import CorruptCheckpoint, load_checkpoint, save_checkpoint
from resnet_exp.training.epoch_sums import EpochSums, StepWindow
from resnet_exp.training.interrupt import Interrupted, StopFlag
from resnet_exp.training.policy import StepPolicy
from resnet_exp.training.progress import Progress

log = logging.getLogger("resnet_exp")
STATEFUL = ("model", "optimizer", "scheduler", "scaler")  # each in a checkpoint as its state_dict


class Data(Protocol):
    steps_per_epoch: int

    def train_batches(
        self, epoch: int, start_step: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...
    def eval_batches(self, split: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


class Logger(Protocol):
    def log(self, metrics: dict, step: int) -> None: ...


@dataclass
class LoopSettings:
    epochs: int
    precision_dtype: torch.dtype | None = None
    channels_last: bool = False
    checkpoint_every_steps: int = 0
    progress: bool = True
    finite_check_steps: int = 50  # one host sync: a blown-up run stops early, not at epoch end
    log_every_steps: int | None = 0  # as trainer.log_every_steps (config.py says what it does)


@dataclass
class FitResult:
    status: str  # completed | diverged | pruned
    rows: list[dict]
    best: dict | None


class Trainer:
    """Trains ``model`` for ``settings.epochs`` epochs, writing metrics and checkpoints."""

    def __init__(
        self, model: nn.Module, data: Data, optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler, device: torch.device, record: RunRecord,
        logger: Logger, settings: LoopSettings,
        forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
        parts: dict[str, nn.Module] | None = None, dist: Any = None,
        wall_start: float | None = None, meta: dict[str, Any] | None = None,
        stop: StopFlag | None = None,
    ) -> None:  # fmt: skip
        self.model, self.data, self.device = model, data, device
        self.optimizer, self.scheduler = optimizer, scheduler
        self.record, self.logger, self.settings = record, logger, settings
        # a torch.compile'd callable may stand in for the model (`or` would call the module's len())
        self.forward = forward if forward is not None else model
        # DDP (resnet_exp.training.distributed.Dist): sums train metrics over ranks; rank 0 saves.
        self.dist = dist
        self.policy = StepPolicy(settings.checkpoint_every_steps, settings.finite_check_steps,
                                 device, dist, stop, record.prune_marker)  # fmt: skip
        every, steps = settings.log_every_steps, settings.epochs * data.steps_per_epoch
        self.every = max(1, steps // 100) if every is None else every
        self.progress = Progress(settings.progress and (dist is None or dist.is_main),
                                 settings.epochs, data.steps_per_epoch, every or 0)  # fmt: skip
        self.scaler = torch.amp.GradScaler(
            device.type, enabled=settings.precision_dtype is torch.float16
        )
        named = parts or {"model": model}
        self.part_params = {
            name: [p for p in module.parameters() if p.requires_grad]
            for name, module in named.items()
        }
        self.epoch, self.step, self.step_in_epoch = 0, 0, 0
        self.best: dict | None = None
        # Sums of the epoch in progress, kept here so a mid-epoch checkpoint carries them.
        self.sums: EpochSums | None = None
        # Wall time of earlier attempts (from the checkpoint resumed) and when this one started.
        self.wall_prior = 0.0
        self.wall_start = time.time() if wall_start is None else wall_start
        self.meta = dict(meta or {})  # caller's facts stored with each checkpoint (config key)

    @property
    def stop(self) -> StopFlag:
        """The SIGINT/SIGTERM flag the loop looks at after every step."""
        return self.policy.stop

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        partial = self.sums if self.step_in_epoch else None
        state = {name: getattr(self, name).state_dict() for name in STATEFUL}
        state |= {"epoch": self.epoch, "step": self.step, "step_in_epoch": self.step_in_epoch,
                  "best": self.best, "torch_rng": torch.get_rng_state(),
                  "wall_time_s": self.wall_time_s(), "meta": self.meta,
                  # global sums under DDP: a collective, so every rank builds the state
                  "partial": partial and partial.to_state(self.dist)}  # fmt: skip
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in STATEFUL:
            getattr(self, name).load_state_dict(state[name])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.step_in_epoch = int(state.get("step_in_epoch", 0))
        self.best = state.get("best")
        partial, lr = state.get("partial"), self.optimizer.param_groups[0]["lr"]
        self.sums = EpochSums.from_state(partial, self.device, lr) if partial else None
        torch.set_rng_state(state["torch_rng"])
        self.wall_prior = float(state.get("wall_time_s", 0.0))
        self.meta = dict(state.get("meta") or {})
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)

    def resume(
        self, path: Path, state: dict[str, Any] | None = None, earlier_wall_s: float = 0.0
    ) -> list[dict]:
        """Continue from a checkpoint (``state``: already loaded from ``path``); metrics rows after
        its last finished epoch are dropped, so no epoch is repeated or skipped. ``earlier_wall_s``
        (what the run record already counts) keeps the run's wall time from going backwards."""
        if state is None:
            state = load_checkpoint(path, map_location=self.device)
        try:
            self.load_state_dict(state)
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as error:
            detail = " ".join(str(error).split())
            raise CorruptCheckpoint(
                f"checkpoint {str(path)!r} does not fit this run's model or optimizer "
                f"({type(error).__name__}: {detail[:300]}{'...' if len(detail) > 300 else ''}). "
                "It was written for another network (model.depth, model.block, model.shortcut, "
                "data.in_channels/num_classes) or another optimizer. Point trainer.resume at a "
                "checkpoint of this configuration, or use trainer.resume=never to start afresh."
            ) from None
        self.wall_prior = max(self.wall_prior, earlier_wall_s)
        if self.sums is not None:
            self.sums = self.sums.for_rank(self.dist)
        rows = self.record.truncate_metrics(self.epoch, last_step=self.step)
        into = f", {self.step_in_epoch} steps into epoch {self.epoch + 1}"
        where = f"epoch {self.epoch} done" + (into if self.step_in_epoch else "")
        log.info("resumed from %s (%s, step %d)", path, where, self.step)
        return rows

    def wall_time_s(self) -> float:
        """Seconds spent on this run: earlier attempts (up to their checkpoint) plus this one."""
        return self.wall_prior + time.time() - self.wall_start

    def save(self, name: str) -> None:
        state = self.state_dict()  # a collective under DDP: every rank calls save
        if self.dist is not None and not self.dist.is_main:
            return
        # last.pt rotates to last.prev.pt: a fallback if last.pt is ever found damaged
        save_checkpoint(self.record.checkpoint_dir / name, state, keep_previous=name == LAST_PT)

    # -- one epoch -----------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = self.settings.precision_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.settings.channels_last else x

    def train_one_epoch(self, epoch: int) -> dict[str, float]:
        """Train epoch ``epoch`` (from ``step_in_epoch`` when resumed mid-epoch); its training
        metrics and its ``lr``. Stops early, with ``policy.diverged`` set, if the loss blows up."""
        self.model.train()
        if not (self.step_in_epoch and self.sums):
            lr = self.optimizer.param_groups[0]["lr"]
            self.sums = EpochSums.zeros(self.device, self.part_params, lr)
        sums, skip = self.sums, self.step_in_epoch
        # Resumed mid-epoch: the data module replays the same epoch order from that step.
        batches = self.data.train_batches(epoch, start_step=skip)
        self.progress.start_epoch(epoch)
        sums.start_clock()  # time since the last checkpoint (sums.elapsed before)
        self.stop.polled = True  # a signal now stops at the next step boundary, with a checkpoint
        for index, (x, y) in enumerate(batches, start=skip):
            lr = self._train_step(x, y, sums)
            self.step_in_epoch = index + 1
            self.progress.step(self.step, lr, y.numel(), sums.running)
            if not self._end_of_step(sums):
                break  # never checkpoint NaN weights; fit() records the divergence
        self.stop.polled = False
        if self.every:
            self._log_window(sums.window)
        self.sums = None
        return sums.metrics(self.dist)

    def _train_step(self, x: torch.Tensor, y: torch.Tensor, sums: EpochSums) -> float:
        """One optimizer step; its loss, errors and gradient norms join ``sums`` on the device.
        Returns the lr it ran at."""
        with self._autocast():
            logits = self.forward(self._prepare(x))
            loss = F.cross_entropy(logits.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        for name, params in self.part_params.items():
            grads = [p.grad for p in params if p.grad is not None]
            if grads:
                sums.grads[name] += torch.nn.utils.get_total_norm(grads)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        batch_loss = loss.detach() * y.numel()
        batch_wrong = (logits.detach().argmax(1) != y).sum()
        sums.add(batch_loss, batch_wrong, y.numel())
        self.step += 1
        every = self.every
        if every:
            sums.window.add(batch_loss, batch_wrong, y.numel())
            if self.step % every == 0:
                self._log_window(sums.window)
        return lr

    def _end_of_step(self, sums: EpochSums) -> bool:
        """After each optimizer step: the finite check and the step checkpoint, when due.
        False when training diverged or was pruned (the epoch stops; nothing is saved)."""
        policy = self.policy
        checkpoint = policy.checkpoint_due(self.step)
        if policy.check_due(self.step, checkpoint) and policy.check_diverged(
            sums.loss, self.model if checkpoint else None
        ):
            return False
        if checkpoint:
            sums.lap()
            self.save(LAST_PT)
        if policy.stop_requested(self.step):
            raise self._interrupt(sums)
        return not policy.prune_requested(self.step)

    def _interrupt(self, sums: EpochSums) -> Interrupted:
        """Save ``last.pt`` at this step boundary (unless the weights are not finite) and return
        the exception that ends the run."""
        sums.lap()
        saved = None
        if not self.policy.check_diverged(sums.loss, self.model):
            self.save(LAST_PT)
            saved = str(self.record.last_checkpoint)
        where = f"; checkpoint {saved}" if saved else " (weights not finite: no checkpoint)"
        log.warning("%s: stopped at epoch %d, step %d%s", signal.Signals(self.stop.signum).name,
                    self.epoch + 1, self.step, where)  # fmt: skip
        return Interrupted(self.stop.signum, saved)

    def _log_window(self, window: StepWindow) -> None:
        """Write the window's per-step row (mean loss and error %) at the current step."""
        row = window.close(self.step, self.dist)
        if row is not None:
            self.record.append_metrics(row)
            self.logger.log(row, step=self.step)

    @torch.inference_mode()
    def evaluate(self, split: str) -> dict[str, float]:
        """Loss and error (%) on ``split`` in eval mode; the model is handed back in the mode it
        was in (tests/test_evaluate_pure.py)."""
        was_training = self.model.training
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        wrong = torch.zeros((), device=self.device)
        total = getattr(self.data, f"num_{split}", None)  # a fake Data may not know it
        try:
            for x, y in self.progress.evaluating(split, total, self.data.eval_batches(split)):
                with self._autocast():
                    logits = self.forward(self._prepare(x))
                loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
                wrong += (logits.argmax(1) != y).sum()
        finally:
            self.model.train(was_training)
        seen = self.progress.images[split]  # the images it counted
        if seen == 0:
            return {}
        loss, err = torch.stack([loss_sum, wrong]).tolist()
        return dict(zip(SPLIT_KEYS[split], (loss / seen, 100.0 * err / seen)))

    # -- the loop ------------------------------------------------------------------------------
    def fit(self, rows: list[dict] | None = None) -> FitResult:
        """Train the remaining epochs; each epoch's row goes to metrics.jsonl, the log and W&B."""
        with self.progress.showing(self.step):
            return self._fit(list(rows or []))

    def _fit(self, rows: list[dict]) -> FitResult:
        while self.epoch < self.settings.epochs:
            epoch = self.epoch + 1
            train = self.train_one_epoch(epoch)
            if self.policy.pruned:  # the epoch's rest is not trained: last.pt ends the epoch before
                log.info("epoch %d, step %d: pruned by the sweep's pruner", epoch, self.step)
                return FitResult(PRUNED, rows, self.best)
            lr = train.pop(LR)
            row: dict[str, Any] = {"epoch": epoch, "step": self.step, **train}
            diverged = (
                self.policy.diverged
                or not math.isfinite(train[TRAIN_LOSS])
                or self.policy.check_diverged(torch.zeros((), device=self.device), self.model)
            )
            if not diverged:
                row.update(self.evaluate("val"))
                row.update(self.evaluate("test"))
            row[LR] = lr
            self.epoch, self.step_in_epoch = epoch, 0
            improved = not diverged and self._update_best(row)
            self.record.append_metrics(row)  # a diverged epoch's: its training metrics only
            rows.append(row)
            if diverged:
                log.error("epoch %d, step %d: training loss %s or weights are not finite; "
                          "stopping (diverged)", epoch, self.step, row[TRAIN_LOSS])  # fmt: skip
                return FitResult(DIVERGED, rows, self.best)
            self._checkpoint_epoch(improved)
            self.logger.log(row, step=self.step)
            log.info(self.progress.epoch_line(row))
        return FitResult(COMPLETED, rows, self.best)

    def _checkpoint_epoch(self, improved: bool) -> None:
        """The end-of-epoch checkpoint (after its metrics row): last.pt, and best.pt if improved."""
        self.save(LAST_PT)
        if improved:
            self.save(BEST_PT)

    def _update_best(self, row: dict) -> bool:
        """Best by validation error (with no validation split, training error; never test),
        strictly lower than the best so far: a later epoch that only ties it is not best."""
        key = VAL_ERR if VAL_ERR in row else TRAIN_ERR
        if self.best is None or row[key] < self.best[key]:
            self.best = dict(row)
            return True
        return False
