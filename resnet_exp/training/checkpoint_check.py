"""A checkpoint's contents are checked before they are trusted: a file that loads can still hold
what no finished step writes (NaN/inf in a weight, BatchNorm statistic or optimizer moment, a
negative running variance, counters that contradict each other). Such a file is refused, named.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from resnet_exp.tracking.record import LAST_PT, previous_path
from resnet_exp.training.checkpoint import CorruptCheckpoint


def check_contents(
    path: Path, state: dict[str, Any], steps_per_epoch: int, same_config: bool
) -> None:
    """Raise :class:`CorruptCheckpoint` for non-finite tensors or impossible counters (under
    ``same_config`` the step count must be exactly what its epoch and step-in-epoch say)."""
    problems = _bad_tensors(state, same_config) + _impossible_counters(
        state, steps_per_epoch, same_config
    )
    if problems:
        shown = "; ".join(problems[:4]) + ("; ..." if len(problems) > 4 else "")
        spare = previous_path(path.with_name(LAST_PT))
        raise CorruptCheckpoint(
            f"checkpoint {str(path)!r} holds what no finished training step writes ({shown}); "
            "it is not continued. A diverged or altered run cannot be resumed from it: continue "
            f"from an earlier checkpoint (trainer.resume={spare} if it is there), or start over "
            "with trainer.resume=never."
        )


def _bad_tensors(state: dict[str, Any], same: bool) -> list[str]:
    import torch

    found, step = [], state.get("step")
    for part in ("model", "optimizer"):
        for name, tensor in _tensors(state.get(part), part):
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                found.append(f"non-finite values in {name}")
            elif name.endswith("running_var") and bool((tensor < 0).any()):
                found.append(f"a negative variance in {name}")
            elif name.endswith(("num_batches_tracked", ".step")):
                found += _bad_count(name, tensor.double(), step if same else None)
    return found


def _bad_count(name: str, counts: Any, step: Any) -> list[str]:
    """A BatchNorm layer counts one batch per training step, so its count is the run's step; an
    optimizer counts the steps it took, at most the run's (mixed precision skips overflows)."""
    if bool((counts < 0).any()) or not bool((counts == counts.round()).all()):
        return [f"{name} is not a count ({counts.flatten()[:3].tolist()})"]
    if not isinstance(step, int):
        return []
    if name.endswith("num_batches_tracked") and bool((counts != step).any()):
        return [f"{name}={int(counts.max())} batches where step={step}"]
    if name.endswith(".step") and bool((counts > step).any()):
        return [f"{name}={int(counts.max())} optimizer steps where step={step}"]
    return []


def _tensors(tree: Any, prefix: str) -> list[tuple[str, Any]]:
    import torch

    if isinstance(tree, torch.Tensor):
        return [(prefix, tree)]
    if isinstance(tree, dict):
        return [t for k, v in tree.items() for t in _tensors(v, f"{prefix}.{k}")]
    if isinstance(tree, (list, tuple)):
        return [t for i, v in enumerate(tree) for t in _tensors(v, f"{prefix}[{i}]")]
    return []


def _impossible_counters(state: dict[str, Any], steps_per_epoch: int, same: bool) -> list[str]:
    epoch, step = state.get("epoch"), state.get("step")
    within = state.get("step_in_epoch", 0)
    counters = {"epoch": epoch, "step": step, "step_in_epoch": within}
    bad = [f"{k}={v!r}" for k, v in counters.items() if not _count(v)]
    if bad:
        return [f"counters that are not counts ({', '.join(bad)})"]
    problems = []
    wall = state.get("wall_time_s", 0.0)
    if not isinstance(wall, (int, float)) or not math.isfinite(wall) or wall < 0:
        problems.append(f"wall_time_s={wall!r}")
    last = (state.get("scheduler") or {}).get("last_epoch", step)
    if same and last != step:
        problems.append(f"the scheduler's last_epoch={last!r} where step={step}")
    if same and steps_per_epoch > 0:
        if within >= steps_per_epoch:
            problems.append(f"step_in_epoch={within} of an epoch of {steps_per_epoch} steps")
        elif step != epoch * steps_per_epoch + within:
            problems.append(
                f"step={step} where epoch={epoch} and step_in_epoch={within} of "
                f"{steps_per_epoch} steps per epoch make {epoch * steps_per_epoch + within}"
            )
    return problems


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_finished_has_rows(path: Path, epoch: int, epochs: int, rows: list[dict]) -> None:
    """A checkpoint at its final epoch resumed into a folder without that run's metrics would be
    recorded as ``completed`` with nothing to show: refused."""
    if epoch >= epochs and not any(r.get("epoch") == epoch for r in rows):
        raise CorruptCheckpoint(
            f"checkpoint {str(path)!r} is at its final epoch ({epoch} of {epochs}): there is "
            "nothing left to train, and this run folder holds no metrics of that run, so it "
            "would be recorded as completed with no results. Read the finished run where it is "
            "(python -m resnet_exp.status <its folder>), or raise trainer.epochs to train on "
            "from it."
        )
