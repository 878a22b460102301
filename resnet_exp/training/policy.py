"""When a training step looks for divergence, when it checkpoints, and whether it must stop; under
DDP every answer is agreed over the ranks, so all save the same step (a collective) or all stop.
"""

from __future__ import annotations

import signal
from pathlib import Path

import torch
from torch import nn

from resnet_exp.training.epoch_sums import Reducer
from resnet_exp.training.interrupt import StopFlag


class StepPolicy:
    """The checkpoint and stop decisions of one run; ``diverged`` says why a fit stopped early."""

    def __init__(
        self, checkpoint_every_steps: int, finite_check_steps: int, device: torch.device,
        dist: Reducer | None = None, stop: StopFlag | None = None, prune_marker: Path | None = None,
    ) -> None:  # fmt: skip
        self.checkpoint_every = checkpoint_every_steps
        self.check_every = finite_check_steps
        self.device, self.dist = device, dist
        # SIGINT/SIGTERM seen by the caller's handlers; looked at after every step (a bool check)
        self.stop = stop or StopFlag()
        self.diverged = False
        self.prune_marker, self.pruned = prune_marker, False  # an Optuna sweep's pruner's file

    def checkpoint_due(self, step: int) -> bool:
        """Whether ``step`` ends with a mid-epoch checkpoint."""
        return bool(self.checkpoint_every) and step % self.checkpoint_every == 0

    def check_due(self, step: int, checkpoint: bool) -> bool:
        """Whether ``step`` looks for divergence (always before a checkpoint)."""
        return checkpoint or bool(self.check_every and step % self.check_every == 0)

    def check_diverged(self, loss_sum: torch.Tensor, model: nn.Module | None = None) -> bool:
        """Whether the running loss sum (and, given ``model``, any weight or buffer) is NaN/inf:
        one host sync, agreed over DDP ranks. Remembered in ``diverged``."""
        bad = ~torch.isfinite(loss_sum)
        if model is not None:  # weights and BatchNorm's running statistics: no checkpoint may
            buffers = (b for b in model.buffers() if b.is_floating_point())  # hold NaN/inf
            params = [p.detach() for p in (*model.parameters(), *buffers)]
            bad = bad | torch.stack([~torch.isfinite(p).all() for p in params]).any()
        bad = bad.float()
        if self.dist is not None:
            bad = self.dist.all_reduce_sum(bad)
        self.diverged = bool(bad.item() > 0)
        return self.diverged

    def prune_requested(self, step: int) -> bool:
        """Whether the sweep's pruner left its marker: looked for every ``finite_check_steps``
        steps (a stat per step costs a round trip on a network filesystem), the DDP ranks agreeing.
        Remembered in ``pruned``."""
        if self.prune_marker is None or step % (self.check_every or 1):
            return False
        self.pruned = self.prune_marker.exists()
        if self.dist is not None:
            seen = torch.tensor(float(self.pruned), device=self.device)
            self.pruned = bool(self.dist.all_reduce_sum(seen).item())
        return self.pruned

    def stop_requested(self, step: int) -> bool:
        """Whether a signal asked to stop. Under DDP the ranks agree every ``finite_check_steps``
        steps, so all of them save the same step."""
        if self.dist is None:
            return self.stop.signum is not None
        if step % (self.check_every or 1):
            return False
        seen = torch.tensor(float(self.stop.signum or 0), device=self.device)
        total = self.dist.all_reduce_sum(seen).item()
        if total and self.stop.signum is None:
            self.stop.signum = signal.SIGTERM  # another rank got the signal (torchrun forwards it)
        return bool(total)
