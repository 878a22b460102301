"""The running sums of one training epoch, kept as device tensors so no step waits on the host.

They are read once at the epoch's end (summed over DDP ranks) and travel in a mid-epoch
checkpoint, so a resumed epoch reports the loss over the whole epoch.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from resnet_exp.tracking.record import (
    EPOCH_S,
    GRAD_NORM,
    IMG_S,
    LR,
    STEP_ERR,
    STEP_IMAGES,
    STEP_LOSS,
    TRAIN_ERR,
    TRAIN_LOSS,
)


class Reducer(Protocol):
    """What the sums need of :class:`resnet_exp.training.distributed.Dist`."""

    is_main: bool

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor: ...


def _over_ranks(
    dist: Reducer | None, loss: torch.Tensor, wrong: torch.Tensor, seen: int
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Loss sum, wrong count and images summed over the DDP ranks (a collective: every rank
    calls it); as they are without ``dist``."""
    if dist is None:
        return loss, wrong, seen
    seen_t = torch.tensor(float(seen), device=loss.device)
    totals = dist.all_reduce_sum(torch.stack([loss, wrong, seen_t]).detach().clone())
    return totals[0], totals[1], int(round(totals[2].item()))


@dataclass
class StepWindow:
    """Loss sum and wrong count (device tensors) and images since the last per-step row."""

    loss: torch.Tensor
    wrong: torch.Tensor
    images: int = 0

    @classmethod
    def zeros(cls, device: torch.device) -> StepWindow:
        return cls(torch.zeros((), device=device), torch.zeros((), device=device))

    @classmethod
    def from_state(cls, state: list | None, device: torch.device) -> StepWindow:
        """From a checkpoint's ``[loss, wrong, images]`` (none in older checkpoints: zeros)."""
        if not state:
            return cls.zeros(device)
        return cls(state[0].to(device), state[1].to(device), int(state[2]))

    def to_state(self) -> list:
        return [self.loss, self.wrong, self.images]

    def add(self, loss: torch.Tensor, wrong: torch.Tensor, images: int) -> None:
        """One step's sums (no host sync)."""
        self.loss += loss
        self.wrong += wrong
        self.images += images

    def close(self, step: int, dist: Reducer | None) -> dict[str, Any] | None:
        """The window's row at ``step`` (one host sync; summed over ranks), then start afresh;
        None when the window is empty."""
        if not self.images:
            return None
        loss, wrong, seen = _over_ranks(dist, self.loss, self.wrong, self.images)
        loss_sum, wrong = torch.stack([loss, wrong]).tolist()
        self.loss.zero_()
        self.wrong.zero_()
        self.images = 0
        return {
            "step": step,
            STEP_LOSS: loss_sum / seen,
            STEP_ERR: 100.0 * wrong / seen,
            STEP_IMAGES: int(round(seen)),
        }


@dataclass
class EpochSums:
    """What one epoch has added up so far; ``lr`` is the lr at the epoch's start (the row's)."""

    loss: torch.Tensor
    wrong: torch.Tensor
    grads: dict[str, torch.Tensor]
    window: StepWindow
    lr: float
    seen: int = 0
    steps: int = 0
    elapsed: float = 0.0  # seconds of this epoch up to the last lap (earlier attempts included)
    _clock: float = field(default_factory=time.perf_counter, repr=False)

    @classmethod
    def zeros(cls, device: torch.device, parts: Iterable[str], lr: float) -> EpochSums:
        zero = torch.zeros((), device=device)
        grads = {name: zero.clone() for name in parts}
        return cls(zero.clone(), zero.clone(), grads, StepWindow.zeros(device), lr)

    @classmethod
    def from_state(cls, state: dict[str, Any], device: torch.device, lr: float) -> EpochSums:
        """From a mid-epoch checkpoint's dict; ``lr``: the lr now, for checkpoints without one."""
        return cls(
            state["loss_sum"].to(device), state["wrong"].to(device),
            {k: v.to(device) for k, v in state["grad_sums"].items()},
            StepWindow.from_state(state.get("window"), device), state.get("lr", lr),
            seen=int(state["seen"]), steps=int(state["steps_done"]),
            elapsed=float(state["elapsed"]),
        )  # fmt: skip

    def to_state(self, dist: Reducer | None = None) -> dict[str, Any]:
        """The checkpoint's dict. With ``dist``, loss, errors and images are summed over all ranks
        (a collective: call it on every rank), since rank 0 writes the checkpoint for all."""
        loss, wrong, seen = _over_ranks(dist, self.loss, self.wrong, self.seen)
        return {
            "loss_sum": loss, "wrong": wrong, "grad_sums": self.grads,
            "window": self.window.to_state(), "seen": seen, "steps_done": self.steps,
            "elapsed": self.elapsed, "lr": self.lr,
        }  # fmt: skip

    def for_rank(self, dist: Reducer | None) -> EpochSums:
        """After resuming: rank 0 keeps the checkpoint's global sums; other ranks start at zero."""
        if dist is None or dist.is_main:
            return self
        zero = torch.zeros_like(self.loss)
        self.loss, self.wrong, self.seen = zero, zero.clone(), 0
        return self

    def add(self, loss: torch.Tensor, wrong: torch.Tensor, images: int) -> None:
        """One step's loss sum and wrong count (device tensors: no host sync)."""
        self.loss += loss
        self.wrong += wrong
        self.seen += images
        self.steps += 1

    def running(self) -> tuple[float, float]:
        """This rank's mean loss and error % of the epoch so far (one host sync: for progress)."""
        loss, wrong = torch.stack([self.loss, self.wrong]).tolist()
        return loss / max(self.seen, 1), 100.0 * wrong / max(self.seen, 1)

    def start_clock(self) -> None:
        self._clock = time.perf_counter()

    def lap(self) -> None:
        """Count the time since the clock started (before a checkpoint stores ``elapsed``)."""
        now = time.perf_counter()
        self.elapsed += now - self._clock
        self._clock = now

    def metrics(self, dist: Reducer | None) -> dict[str, float]:
        """The epoch's training metrics (one host sync; loss and errors over all ranks, gradient
        norms are equal on every rank already) and the epoch's ``lr``."""
        elapsed = self.elapsed + time.perf_counter() - self._clock
        loss, wrong, seen = _over_ranks(dist, self.loss, self.wrong, self.seen)
        values = torch.stack([loss, wrong, *self.grads.values()]).tolist()
        seen = max(seen, 1)
        out = {TRAIN_LOSS: values[0] / seen, TRAIN_ERR: 100.0 * values[1] / seen, LR: self.lr}
        for name, total in zip(self.grads, values[2:]):
            out[GRAD_NORM + name] = total / max(self.steps, 1)
        out[EPOCH_S] = elapsed
        out[IMG_S] = seen / elapsed if elapsed > 0 else 0.0
        return out
