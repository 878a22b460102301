"""The training loop: one screen of code, no host sync inside an epoch.

Loss, error counts and per-part gradient norms are accumulated as device tensors and read once per
epoch, so the GPU (or the CPU's worker threads) never wait on Python between steps.
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

from resnet_exp.tracking.record import RunRecord
from resnet_exp.training.checkpoint import CorruptCheckpoint, load_checkpoint, save_checkpoint
from resnet_exp.training.interrupt import Interrupted, StopFlag

log = logging.getLogger("resnet_exp")


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
    # Look at the running loss sum every this many steps (one host sync) so a blown-up run stops
    # early instead of at the end of the epoch; also checked before every mid-epoch checkpoint.
    finite_check_steps: int = 50
    # Append a training row (loss and error over the last this-many steps) to metrics.jsonl and
    # W&B; 0 = epoch rows only. A window closes at this step count or at the epoch's end.
    log_every_steps: int = 0


@dataclass
class FitResult:
    status: str  # completed | diverged
    rows: list[dict]
    best: dict | None
    steps: int


class Trainer:
    """Trains ``model`` for ``settings.epochs`` epochs, writing metrics and checkpoints."""

    def __init__(
        self,
        model: nn.Module,
        data: Data,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        device: torch.device,
        record: RunRecord,
        logger: Logger,
        settings: LoopSettings,
        forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
        parts: dict[str, nn.Module] | None = None,
        dist: Any = None,
        wall_start: float | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.model, self.data, self.device = model, data, device
        self.optimizer, self.scheduler = optimizer, scheduler
        self.record, self.logger, self.settings = record, logger, settings
        # a torch.compile'd callable may stand in for the model (`or` would call the module's len())
        self.forward = forward if forward is not None else model
        # DDP (resnet_exp.training.distributed.Dist): sums train metrics over ranks; rank 0 saves.
        self.dist = dist
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
        self.partial: dict[str, Any] | None = None
        # Wall time of earlier attempts (from the checkpoint resumed) and when this one started.
        self.wall_prior = 0.0
        self.wall_start = time.time() if wall_start is None else wall_start
        self.meta = dict(meta or {})  # caller's facts stored with each checkpoint (config key)
        self.stopped_diverged = False
        self._clock = time.perf_counter()
        # SIGINT/SIGTERM seen by the caller's handlers; looked at after every step (a bool check)
        self.stop = StopFlag()

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "step_in_epoch": self.step_in_epoch,
            "best": self.best,
            "partial": self.partial if self.step_in_epoch else None,
            "torch_rng": torch.get_rng_state(),
            "wall_time_s": self.wall_time_s(),
            "meta": self.meta,
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.step_in_epoch = int(state.get("step_in_epoch", 0))
        self.best = state.get("best")
        self.partial = state.get("partial")
        torch.set_rng_state(state["torch_rng"])
        self.wall_prior = float(state.get("wall_time_s", 0.0))
        self.meta = dict(state.get("meta") or {})
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)

    def resume(
        self, path: Path, state: dict[str, Any] | None = None, earlier_wall_s: float = 0.0
    ) -> list[dict]:
        """Continue from a checkpoint (``state``: already loaded from ``path``); metrics rows after
        its last finished epoch are dropped, so no epoch is repeated or skipped.

        ``earlier_wall_s``: wall time the run record already counts (attempts that got further than
        their last checkpoint), so the run's wall time never goes backwards."""
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
        if self.dist is not None:
            self.partial = self.dist.local_partial(self.partial)
        rows = self.record.truncate_metrics(self.epoch, last_step=self.step)
        where = f"epoch {self.epoch} done" + (
            f", {self.step_in_epoch} steps into epoch {self.epoch + 1}"
            if self.step_in_epoch
            else ""
        )
        log.info("resumed from %s (%s, step %d)", path, where, self.step)
        return rows

    def wall_time_s(self) -> float:
        """Seconds spent on this run: earlier attempts (up to their checkpoint) plus this one."""
        return self.wall_prior + time.time() - self.wall_start

    def _diverged(self, loss_sum: torch.Tensor, weights: bool = False) -> bool:
        """Whether the running loss sum (and, before a checkpoint, any weight) is NaN/inf: one host
        sync, agreed over DDP ranks. Sets ``self.stopped_diverged`` for fit()."""
        bad = ~torch.isfinite(loss_sum)
        if weights:
            # weights and BatchNorm's running statistics: no checkpoint may hold NaN/inf
            buffers = (b for b in self.model.buffers() if b.is_floating_point())
            params = [p.detach() for p in (*self.model.parameters(), *buffers)]
            bad = bad | torch.stack([~torch.isfinite(p).all() for p in params]).any()
        bad = bad.float()
        if self.dist is not None:
            bad = self.dist.all_reduce_sum(bad)
        self.stopped_diverged = bool(bad.item() > 0)
        return self.stopped_diverged

    def save(self, name: str) -> None:
        state = self.state_dict()
        if self.dist is not None:
            state = self.dist.checkpoint_state(state)  # a collective: every rank calls save
            if not self.dist.is_main:
                return
        # last.pt rotates to last.prev.pt: a fallback if last.pt is ever found damaged
        save_checkpoint(self.record.checkpoint_dir / name, state, keep_previous=name == "last.pt")

    # -- steps ---------------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = self.settings.precision_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.settings.channels_last else x

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        self.model.train()
        zero = torch.zeros((), device=self.device)
        acc = self.partial if self.step_in_epoch and self.partial else None
        if acc is None:
            acc = {
                "loss_sum": zero.clone(),
                "wrong": zero.clone(),
                "grad_sums": {name: zero.clone() for name in self.part_params},
                "window": [zero.clone(), zero.clone(), 0],  # loss sum, wrong, images
                "seen": 0,
                "steps_done": 0,
                "elapsed": 0.0,
                # lr at the start of the epoch (the row's lr), kept for a mid-epoch resume
                "lr": self.optimizer.param_groups[0]["lr"],
            }
        else:
            acc = {
                **acc,
                "loss_sum": acc["loss_sum"].to(self.device),
                "wrong": acc["wrong"].to(self.device),
                "grad_sums": {k: v.to(self.device) for k, v in acc["grad_sums"].items()},
            }
            window = acc.get("window") or [zero.clone(), zero.clone(), 0]
            acc["window"] = [window[0].to(self.device), window[1].to(self.device), window[2]]
        self.partial = acc
        loss_sum, wrong, grad_sums = acc["loss_sum"], acc["wrong"], acc["grad_sums"]
        skip = self.step_in_epoch
        # Resumed mid-epoch: the data module replays the same epoch order from that step.
        batches = self.data.train_batches(epoch, start_step=skip)
        bar = _progress(
            self.settings.progress, self.data.steps_per_epoch, epoch, self.settings.epochs
        )
        self._clock = time.perf_counter()  # since the last checkpoint (acc["elapsed"] before)
        bar.update(skip)
        self.stop.polled = True  # a signal now stops at the next step boundary, with a checkpoint
        for index, (x, y) in enumerate(batches, start=skip):
            x = self._prepare(x)
            with self._autocast():
                logits = self.forward(x)
                loss = F.cross_entropy(logits.float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            for name, params in self.part_params.items():
                grads = [p.grad for p in params if p.grad is not None]
                if grads:
                    grad_sums[name] += torch.nn.utils.get_total_norm(grads)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            batch_loss = loss.detach() * y.numel()
            batch_wrong = (logits.detach().argmax(1) != y).sum()
            loss_sum += batch_loss
            wrong += batch_wrong
            acc["seen"] += y.numel()
            acc["steps_done"] += 1
            self.step += 1
            self.step_in_epoch = index + 1
            bar.update(1)
            if self.settings.log_every_steps:
                self._window_step(acc["window"], batch_loss, batch_wrong, y.numel())
            if not self._end_of_step(acc):
                break  # never checkpoint NaN weights; fit() records the divergence
        self.stop.polled = False
        bar.close()
        if self.settings.log_every_steps:
            self._close_window(acc["window"])
        elapsed = acc["elapsed"] + time.perf_counter() - self._clock
        totals = torch.stack([loss_sum, wrong, *grad_sums.values()])
        if self.dist is not None:  # loss and errors over all ranks (grads are equal already)
            seen_t = torch.tensor(float(acc["seen"]), device=self.device)
            summed = self.dist.all_reduce_sum(torch.stack([totals[0], totals[1], seen_t]))
            totals = torch.cat([summed[:2], totals[2:]])
            acc["seen"] = int(round(summed[2].item()))
        totals = totals.tolist()
        seen, steps_done = max(acc["seen"], 1), acc["steps_done"]
        self.partial = None
        metrics = {"train/loss": totals[0] / seen, "train/err": 100.0 * totals[1] / seen}
        metrics["lr"] = acc.get("lr", self.optimizer.param_groups[0]["lr"])
        for name, total in zip(grad_sums, totals[2:]):
            metrics[f"grad_norm/{name}"] = total / max(steps_done, 1)
        metrics["time/epoch_s"] = elapsed
        metrics["throughput/img_s"] = seen / elapsed if elapsed > 0 else 0.0
        return metrics

    def _end_of_step(self, acc: dict[str, Any]) -> bool:
        """After each optimizer step: the finite check and the step checkpoint, when due.
        False when training diverged (the epoch stops; nothing is saved)."""
        every = self.settings.checkpoint_every_steps
        checkpoint = bool(every) and self.step % every == 0
        check = self.settings.finite_check_steps
        if (checkpoint or (check and self.step % check == 0)) and self._diverged(
            acc["loss_sum"], weights=checkpoint
        ):
            return False
        if checkpoint:
            self._add_elapsed(acc)
            self.save("last.pt")
        if self._stop_requested():
            raise self._interrupt(acc)
        return True

    def _add_elapsed(self, acc: dict[str, Any]) -> None:
        now = time.perf_counter()
        acc["elapsed"] += now - self._clock
        self._clock = now

    def _stop_requested(self) -> bool:
        """Whether a signal asked to stop. Under DDP the ranks agree every
        ``finite_check_steps`` steps, so all of them save the same step (save is a collective)."""
        if self.dist is None:
            return self.stop.signum is not None
        check = self.settings.finite_check_steps or 1
        if self.step % check:
            return False
        seen = torch.tensor(float(self.stop.signum or 0), device=self.device)
        total = self.dist.all_reduce_sum(seen).item()
        if total and self.stop.signum is None:
            self.stop.signum = signal.SIGTERM  # another rank got the signal (torchrun forwards it)
        return bool(total)

    def _interrupt(self, acc: dict[str, Any]) -> Interrupted:
        """Save ``last.pt`` at this step boundary (unless the weights are not finite) and return
        the exception that ends the run."""
        self._add_elapsed(acc)
        saved = None
        if not self._diverged(acc["loss_sum"], weights=True):
            self.save("last.pt")
            saved = str(self.record.checkpoint_dir / "last.pt")
        log.warning(
            "%s: stopped at epoch %d, step %d%s",
            signal.Signals(self.stop.signum).name,
            self.epoch + 1,
            self.step,
            f"; checkpoint {saved}" if saved else " (weights not finite: no checkpoint)",
        )
        return Interrupted(self.stop.signum, saved)

    def _window_step(self, window: list, loss: torch.Tensor, wrong: torch.Tensor, n: int) -> None:
        """Add one step to the running window (device tensors: no sync); close it on schedule."""
        window[0] += loss
        window[1] += wrong
        window[2] += n
        if self.step % self.settings.log_every_steps == 0:
            self._close_window(window)

    def _close_window(self, window: list) -> None:
        """One host sync: write the window's mean loss and error (%) at the current step."""
        if not window[2]:
            return
        loss_sum, wrong = torch.stack([window[0], window[1]]).tolist()
        if self.dist is not None:
            totals = torch.tensor([loss_sum, wrong, float(window[2])], device=self.device)
            loss_sum, wrong, seen = self.dist.all_reduce_sum(totals).tolist()
        else:
            seen = float(window[2])
        row = {
            "step": self.step,
            "train_step/loss": loss_sum / seen,
            "train_step/err": 100.0 * wrong / seen,
            "train_step/images": int(round(seen)),
        }
        self.record.append_metrics(row)
        self.logger.log(row, step=self.step)
        window[0].zero_()
        window[1].zero_()
        window[2] = 0

    @torch.inference_mode()
    def evaluate(self, split: str) -> dict[str, float]:
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        wrong = torch.zeros((), device=self.device)
        seen = 0
        for x, y in self.data.eval_batches(split):
            with self._autocast():
                logits = self.forward(self._prepare(x))
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
            wrong += (logits.argmax(1) != y).sum()
            seen += y.numel()
        if seen == 0:
            return {}
        loss, err = torch.stack([loss_sum, wrong]).tolist()
        return {f"{split}/loss": loss / seen, f"{split}/err": 100.0 * err / seen}

    # -- the loop ------------------------------------------------------------------------------
    def fit(self, rows: list[dict] | None = None) -> FitResult:
        rows = list(rows or [])
        while self.epoch < self.settings.epochs:
            epoch = self.epoch + 1
            train = self._train_epoch(epoch)
            lr = train.pop("lr")
            row: dict[str, Any] = {"epoch": epoch, "step": self.step, **train}
            if (
                self.stopped_diverged
                or not math.isfinite(train["train/loss"])
                or self._diverged(torch.zeros((), device=self.device), weights=True)
            ):
                self.epoch, self.step_in_epoch = epoch, 0
                row["lr"] = lr
                self.record.append_metrics(row)
                rows.append(row)
                log.error(
                    "epoch %d, step %d: training loss %s or weights are not finite; stopping "
                    "(diverged)",
                    epoch,
                    self.step,
                    train["train/loss"],
                )
                return FitResult("diverged", rows, self.best, self.step)
            row.update(self.evaluate("val"))
            row.update(self.evaluate("test"))
            row["lr"] = lr
            self.epoch, self.step_in_epoch = epoch, 0
            improved = self._update_best(row)
            self.record.append_metrics(row)
            rows.append(row)
            self._checkpoint_epoch(improved)
            self.logger.log(row, step=self.step)
            log.info(_epoch_line(row, self.settings.epochs))
        return FitResult("completed", rows, self.best, self.step)

    def _checkpoint_epoch(self, improved: bool) -> None:
        """The end-of-epoch checkpoint (after its metrics row): last.pt, and best.pt if improved."""
        self.save("last.pt")
        if improved:
            self.save("best.pt")

    def _update_best(self, row: dict) -> bool:
        """Best by validation error; with no validation split, by training error (never test)."""
        key = "val/err" if "val/err" in row else "train/err"
        if self.best is None or row[key] < self.best[key]:
            self.best = dict(row)
            return True
        return False


def _progress(enabled: bool, total: int, epoch: int, epochs: int):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=f"epoch {epoch}/{epochs}",
        unit="step",
        leave=False,
        disable=None if enabled else True,  # None: on only when stderr is a terminal
        mininterval=1.0,
        dynamic_ncols=True,
    )


def _epoch_line(row: dict, epochs: int) -> str:
    parts = [
        f"epoch {row['epoch']}/{epochs}",
        f"train loss {row['train/loss']:.4f} err {row['train/err']:.2f}%",
    ]
    if "val/err" in row:
        parts.append(f"val err {row['val/err']:.2f}%")
    if "test/err" in row:
        parts.append(f"test err {row['test/err']:.2f}%")
    parts += [
        f"lr {row['lr']:.4g}",
        f"{row['time/epoch_s']:.1f}s",
        f"{row['throughput/img_s']:.0f} img/s",
    ]
    return " | ".join(parts)
