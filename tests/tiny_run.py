"""A tiny run in this process through the real entry point (compose -> ``app.train`` -> record),
on a fake Fashion-MNIST whose images spell their own index, with every forward input and every
optimizer step recorded, so tests can recompute what the run reports from first principles.

The fake images: pixel (0, 0) is the image's index, its label is ``index * 7 % 10``; with
``data.mean=[0.0] data.std=[1.0]`` a batch's labels follow from its pixels alone.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

N_TRAIN, N_TEST = 96, 40

# What every tiny run uses unless a test overrides it: 64 training images (48 train + 16 val) at
# batch 16 = 3 steps per epoch, all 40 test images, a depth-8 net, fp32 on one CPU thread.
BASE = [
    "data.train_subset=64",
    "data.val_size=16",
    "data.batch_size=16",
    "data.eval_batch_size=24",
    "data.mean=[0.0]",
    "data.std=[1.0]",
    "model.depth=8",
    "trainer.epochs=2",
    "trainer.device=cpu",
    "trainer.precision=32",
    "trainer.channels_last=false",
    "trainer.compile=false",
    "trainer.num_threads=1",
    "trainer.progress=false",
    "trainer.response_images=0",
    "logger=none",
]


def label_of(index: torch.Tensor) -> torch.Tensor:
    return index * 7 % 10


def fake_fashionmnist(root: Path) -> Path:
    """Write IDX files of random images whose pixel (0, 0) is their index (< 256)."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", N_TRAIN, 1), ("t10k", N_TEST, 2)):
        g = torch.Generator().manual_seed(seed)
        x = torch.randint(0, 256, (n, 28, 28), generator=g).to(torch.uint8)
        x[:, 0, 0] = torch.arange(n, dtype=torch.uint8)
        y = label_of(torch.arange(n)).to(torch.uint8)
        header = struct.pack(">IIII", 2051, n, 28, 28)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(header + x.numpy().tobytes())
        labels = struct.pack(">II", 2049, n) + y.numpy().tobytes()
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(labels)
    return root


def train_images(mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """The fake training images (all of them, in file order), normalised here."""
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (N_TRAIN, 28, 28), generator=g).to(torch.uint8)
    x[:, 0, 0] = torch.arange(N_TRAIN, dtype=torch.uint8)
    return ((x.float() / 255 - mean) / std).unsqueeze(1)


def fake_test_split(mean: float = 0.0, std: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The fake test split as a run should see it, built here without the data module."""
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 256, (N_TEST, 28, 28), generator=g).to(torch.uint8)
    x[:, 0, 0] = torch.arange(N_TEST, dtype=torch.uint8)
    images = ((x.float() / 255 - mean) / std).unsqueeze(1)
    return images, label_of(torch.arange(N_TEST))


def labels_from_pixels(x: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    index = torch.round((x[:, 0, 0, 0] * std + mean) * 255).long()
    return label_of(index)


@dataclass
class Step:
    """One optimizer step: the lr of each group, and parameters (in the optimizer's order) and
    their gradients before the step, parameters after it, the model's state before it and the
    batch of the forward pass that made the gradients."""

    lrs: list[float]
    before: list[torch.Tensor]
    grads: list[torch.Tensor | None]
    after: list[torch.Tensor] = field(default_factory=list)
    state: dict[str, torch.Tensor] = field(default_factory=dict)
    x: torch.Tensor | None = None


@dataclass
class TinyRun:
    cfg: object
    run_dir: Path
    summary: object
    steps: list[Step]
    model: nn.Module  # the trained network (the last one a forward pass went through)

    def rows(self) -> list[dict]:
        lines = (self.run_dir / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    def epoch_rows(self) -> list[dict]:
        return [r for r in self.rows() if "epoch" in r]

    def step_rows(self) -> list[dict]:
        return [r for r in self.rows() if "epoch" not in r]


def train_tiny(tmp_path: Path, *overrides: str, stop_after: int = 0) -> TinyRun:
    """Train ``BASE + overrides`` in this process through ``app.train``, recording every step.

    ``stop_after``: after that many optimizer steps of this attempt, SIGTERM as the signal handler
    would record it; the run saves ``last.pt`` at that step and stops (``summary`` is then None).
    Running again with the same ``tmp_path`` resumes it (``trainer.resume=auto``).
    """
    import signal

    from resnet_exp.app import train
    from resnet_exp.hydra_glue.compose import compose
    from resnet_exp.hydra_glue.job import JobFacts
    from resnet_exp.models import ResNet
    from resnet_exp.training.interrupt import Interrupted, StopFlag

    root = tmp_path / "data"
    if not root.exists():
        fake_fashionmnist(root)
    run_dir = tmp_path / "run"
    all_overrides = [f"data.root={root}", *BASE, *overrides]
    cfg = compose(all_overrides)
    steps: list[Step] = []
    seen: dict = {}

    def on_forward(module: nn.Module, args: tuple) -> None:
        if isinstance(module, ResNet):
            seen["model"], seen["x"] = module, args[0].detach().clone()

    def before_step(optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        params = [p for g in optimizer.param_groups for p in g["params"]]
        model = seen["model"]
        steps.append(
            Step(
                lrs=[float(g["lr"]) for g in optimizer.param_groups],
                before=[p.detach().clone() for p in params],
                grads=[None if p.grad is None else p.grad.detach().clone() for p in params],
                state={k: v.detach().clone() for k, v in model.state_dict().items()},
                x=seen["x"],
            )
        )

    def after_step(optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        params = [p for g in optimizer.param_groups for p in g["params"]]
        steps[-1].after = [p.detach().clone() for p in params]
        if len(steps) == stop_after:
            stop.signum = signal.SIGTERM

    from torch.optim.optimizer import (
        register_optimizer_step_post_hook,
        register_optimizer_step_pre_hook,
    )

    handles = [
        nn.modules.module.register_module_forward_pre_hook(on_forward),
        register_optimizer_step_pre_hook(before_step),
        register_optimizer_step_post_hook(after_step),
    ]
    summary = None
    try:
        with StopFlag() as stop:  # the test process's own signal handlers come back afterwards
            summary = train(
                cfg, JobFacts(run_dir=run_dir, overrides=list(overrides), group="t"), stop
            )
    except Interrupted:
        if not stop_after:
            raise
    finally:
        for handle in handles:
            handle.remove()
    return TinyRun(cfg, run_dir, summary, steps, seen.get("model"))


def fresh_model(cfg) -> nn.Module:
    """A network of the run's architecture, built from its config (weights to be loaded)."""
    from hydra.utils import instantiate

    return instantiate(cfg.model)
