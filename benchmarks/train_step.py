"""(a) resnet_exp's Trainer vs a bare hand-written PyTorch loop: same model, batches, precision.

Both train on the same in-memory batches (real Fashion-MNIST when installed, else synthetic) with
SGD and a per-step LR schedule; each timed repetition runs ``--steps`` optimizer steps and ends with
one host sync, as an epoch does. A third variant drops the Trainer's per-part gradient norms to
show what they cost. ``speed = bare time / variant time`` (1.0 = as fast as the bare loop).

    python -m benchmarks.train_step [--quick] [--model resnet20] [--precision 32] [--channels-last]
"""

from __future__ import annotations

import contextlib
import copy
import tempfile
from pathlib import Path

from benchmarks import common

NAME = "train_step"


def make_bare_step(model, optimizer, scheduler, dtype, channels_last: bool, device):
    import torch
    import torch.nn.functional as F

    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)

    def step(x, y):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        ctx = (
            torch.autocast(device.type, dtype=dtype)
            if dtype is not None
            else contextlib.nullcontext()
        )
        with ctx:
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        return loss

    return step


class FixedData:
    """The Trainer's data protocol over a fixed list of batches (one 'epoch' = the list)."""

    def __init__(self, batches) -> None:
        self.batches = batches
        self.steps_per_epoch = len(batches)

    def train_batches(self, epoch: int, start_step: int = 0):
        return iter(self.batches[start_step:])

    def eval_batches(self, split: str):
        return iter(())


def optimizer_for(model):
    import torch

    from resnet_exp.training.schedules import constant

    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    return opt, constant(opt, total_steps=10**9)


def make_trainer(model, batches, dtype, channels_last, device, run_dir: Path, grad_norms: bool):
    from resnet_exp.tracking.record import RunRecord
    from resnet_exp.training.loop import LoopSettings, Trainer

    opt, sched = optimizer_for(model)
    settings = LoopSettings(
        epochs=1, precision_dtype=dtype, channels_last=channels_last, progress=False
    )
    trainer = Trainer(
        model, FixedData(batches), opt, sched, device, RunRecord(run_dir), None, settings,
        parts=model.parts(),
    )  # fmt: skip
    if not grad_norms:
        trainer.part_params = {}
    return trainer


def grad_norm_seconds(trainer, device, calls: int = 50) -> float:
    """Median seconds of the Trainer's per-part gradient norms, measured alone (``calls`` times)."""
    import torch

    sums = {name: torch.zeros((), device=device) for name in trainer.part_params}

    def once():
        for name, params in trainer.part_params.items():
            grads = [p.grad for p in params if p.grad is not None]
            if grads:
                sums[name] += torch.nn.utils.get_total_norm(grads)

    times = [common.timed(once, device) for _ in range(calls)]
    return common.median(times)


def run(args) -> dict:
    import torch

    from resnet_exp.training.device import autocast_dtype

    device = common.pick_device(args.device, args.threads)
    dtype = autocast_dtype(args.precision, device)
    quick = args.quick
    batch_size = args.batch_size or (32 if quick else 128)
    steps = args.steps or (3 if quick else 5)
    reps = args.reps or (3 if quick else 7)
    data, source = common.batches(device, batch_size=batch_size, count=steps)

    torch.manual_seed(0)
    base = common.build_model(args.model).to(device)
    if args.channels_last:
        base = base.to(memory_format=torch.channels_last)
    load_before = common.load_average()

    bare_model = copy.deepcopy(base)
    bare_model.train()
    bare_step = make_bare_step(
        bare_model, *optimizer_for(bare_model), dtype, args.channels_last, device
    )

    def bare() -> float:
        def work():
            loss = None
            for x, y in data:
                loss = bare_step(x, y)
            loss.item()  # one host sync per repetition, like the Trainer's one per epoch

        return common.timed(work, device)

    tmp = Path(tempfile.mkdtemp(prefix="bench-trainer-"))
    trainers = {
        "trainer": make_trainer(
            copy.deepcopy(base), data, dtype, args.channels_last, device, tmp / "a", True
        ),
        "trainer_no_grad_norms": make_trainer(
            copy.deepcopy(base), data, dtype, args.channels_last, device, tmp / "b", False
        ),
    }

    def trainer_variant(trainer):
        def go() -> float:
            trainer.step_in_epoch = 0  # a fresh epoch each time (fit() does this between epochs)
            return common.timed(lambda: trainer.train_one_epoch(1), device)

        return go

    variants = {"bare": bare, **{k: trainer_variant(t) for k, t in trainers.items()}}
    times = common.interleaved(variants, reps=reps)
    bare_median = common.median(times["bare"])
    rows = []
    for name, ts in times.items():
        med = common.median(ts)
        rows.append(
            {
                "variant": name,
                "median_s": med,
                "ms_per_step": 1000 * med / steps,
                "img_per_s": steps * batch_size / med,
                "speed_vs_bare": bare_median / med,
                "paired_speed_vs_bare": common.paired_speed(times["bare"], ts),
            }
        )
    by = {r["variant"]: r for r in rows}
    norm_ms = 1000 * grad_norm_seconds(trainers["trainer"], device)
    grad_norm_cost = 1 / common.paired_speed(times["trainer_no_grad_norms"], times["trainer"]) - 1
    result = {
        **common.result_header(NAME, quick, common.environment(device), load_before),
        "config": {
            "model": args.model,
            "precision": args.precision,
            "channels_last": args.channels_last,
            "batch_size": batch_size,
            "steps_per_rep": steps,
            "reps": reps,
            "data": source,
        },
        "rows": rows,
        "times_s": times,
        "trainer_vs_bare": by["trainer"]["paired_speed_vs_bare"],
        "trainer_vs_bare_of_medians": by["trainer"]["speed_vs_bare"],
        "grad_norm_cost": grad_norm_cost,
        "grad_norm_ms_per_step": norm_ms,
        "grad_norm_share_of_step": norm_ms / by["trainer"]["ms_per_step"],
        "meets_target": by["trainer"]["paired_speed_vs_bare"] >= 0.95,
    }
    print(
        f"== {NAME}: {args.model}, precision {args.precision}, batch {batch_size}, "
        f"{steps} steps x {reps} reps, {source} data, {device}; load {load_before}"
    )
    print(
        common.format_table(
            rows, ["variant", "ms_per_step", "img_per_s", "speed_vs_bare", "paired_speed_vs_bare"]
        )
    )
    print(
        f"Trainer vs bare: {result['trainer_vs_bare']:.3f}x (target >= 0.95); per-part grad "
        f"norms: {norm_ms:.2f} ms/step alone ({100 * norm_ms / by['trainer']['ms_per_step']:.2f}% "
        f"of a step); with vs without, side by side: {100 * grad_norm_cost:+.1f}%"
    )
    return result


def _arguments(p) -> None:
    p.add_argument("--model", default="resnet20", choices=sorted(common.MODELS))
    p.add_argument("--precision", default="32", choices=["32", "bf16", "16"])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="optimizer steps per repetition")


def main(argv=None) -> dict:
    return common.run_main(NAME, __doc__, run, argv, _arguments)


if __name__ == "__main__":
    main()
