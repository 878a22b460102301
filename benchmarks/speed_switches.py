"""(c) precision x channels_last x compile: training-step speed relative to fp32 eager NCHW.

For each model, every combination trains on the same batches with its own copy of the same
initial weights; the variants are interleaved and ``speed = fp32-eager time / variant time``
(> 1 is faster). bf16 is included on CPUs without native bf16 too, to show why ``auto`` avoids it.
``--compile`` adds torch.compile variants (cold compile 30+ s each, reported as ``compile_s``);
``--compile-precisions bf16`` compiles only those precisions' variants (fewer cold compiles).

    python -m benchmarks.speed_switches [--quick] [--models resnet20,resnet56,resnet18]
        [--precisions 32,bf16] [--compile] [--compile-precisions bf16]
"""

from __future__ import annotations

import copy
import itertools
import time

from benchmarks import common
from benchmarks.train_step import make_bare_step, optimizer_for

NAME = "speed_switches"


def gemm_rates(device, precisions: list[str], reps: int) -> dict[str, float]:
    """Square matrix-multiply GFLOP/s per dtype, interleaved: the ceiling each precision gives the
    convolutions, so a slow bf16 row below can be told apart from a slow model."""
    import torch

    from resnet_exp.training.device import autocast_dtype

    n = 4096 if device.type == "cuda" else 512
    variants = {}
    for precision in precisions:
        dtype = autocast_dtype(precision, device) or torch.float32
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        variants[precision] = lambda a=a, b=b: common.timed(lambda: a @ b, device)
    times = common.interleaved(variants, reps=reps)
    return {p: 2 * n**3 / common.median(ts) / 1e9 for p, ts in times.items()}


def onednn_bf16(device) -> bool | None:
    """Whether oneDNN has native bf16 kernels on this CPU (None: not a CPU, or unknown)."""
    import torch

    if device.type != "cpu":
        return None
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(probe()) if probe is not None else None


def run(args) -> dict:
    import torch

    from resnet_exp.training.device import autocast_dtype
    from resnet_exp.training.speed import choose

    device = common.pick_device(args.device, args.threads)
    quick = args.quick
    models = (
        args.models.split(",")
        if args.models
        else (["resnet20"] if quick else ["resnet20", "resnet56", "resnet18"])
    )
    default_precisions = "32,bf16,16" if device.type == "cuda" else "32,bf16"
    precisions = (args.precisions or default_precisions).split(",")
    compiles = [False, True] if args.compile else [False]
    compiled_precisions = (args.compile_precisions or ",".join(precisions)).split(",")
    batch_size = args.batch_size or (16 if quick else 32)
    steps = args.steps or 1
    reps = args.reps or (3 if quick else 5)
    data, source = common.batches(device, batch_size=batch_size, count=steps)
    load_before = common.load_average()

    class Auto:  # what trainer.*=auto picks on this device, for the table
        precision, channels_last, compile = "auto", "auto", "auto"

    auto = choose(Auto, device, planned_steps=None)
    gemm = gemm_rates(device, precisions, reps)
    native_bf16 = onednn_bf16(device)

    rows, all_times = [], {}
    for model_name in models:
        torch.manual_seed(0)
        base = common.build_model(model_name).to(device)
        variants, compile_s = {}, {}
        for precision, channels_last, compiled in itertools.product(
            precisions, [False, True], compiles
        ):
            if compiled and precision not in compiled_precisions:
                continue
            key = f"{precision}|{'NHWC' if channels_last else 'NCHW'}|" + (
                "compiled" if compiled else "eager"
            )
            model = copy.deepcopy(base)
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
            forward = torch.compile(model) if compiled else model
            opt, sched = optimizer_for(model)
            step = make_bare_step(
                forward, opt, sched, autocast_dtype(precision, device), channels_last, device
            )
            if compiled:  # the cold compile, timed on its own
                t = time.perf_counter()
                step(*data[0]).item()
                compile_s[key] = time.perf_counter() - t

            def go(step=step) -> float:
                def work():
                    loss = None
                    for x, y in data:
                        loss = step(x, y)
                    loss.item()

                return common.timed(work, device)

            variants[key] = go
        times = common.interleaved(variants, reps=reps)
        all_times[model_name] = times
        base_key = "32|NCHW|eager"
        base_med = common.median(times[base_key])
        for key, ts in times.items():
            precision, layout, mode = key.split("|")
            med = common.median(ts)
            rows.append(
                {
                    "model": model_name,
                    "precision": precision,
                    "layout": layout,
                    "mode": mode,
                    "ms_per_step": 1000 * med / steps,
                    "speed_vs_fp32_eager": base_med / med,
                    "paired_speed": common.paired_speed(times[base_key], ts),
                    "compile_s": compile_s.get(key, ""),
                }
            )
    result = {
        **common.result_header(NAME, quick, common.environment(device), load_before),
        "config": {
            "models": models,
            "precisions": precisions,
            "compile": args.compile,
            "compiled_precisions": compiled_precisions if args.compile else [],
            "batch_size": batch_size,
            "steps_per_rep": steps,
            "reps": reps,
            "data": source,
        },
        "auto": {
            "precision": auto.precision,
            "channels_last": auto.channels_last,
            "compile": auto.compile,
            "reasons": dict(auto.reasons),
        },
        "gemm_gflops": gemm,
        "onednn_bf16": native_bf16,
        "rows": rows,
        "times_s": all_times,
    }
    print(
        f"== {NAME}: batch {batch_size}, {steps} steps x {reps} reps, {source}, {device}; "
        f"load {load_before}"
    )
    print(
        common.format_table(
            rows,
            [
                "model",
                "precision",
                "layout",
                "mode",
                "ms_per_step",
                "speed_vs_fp32_eager",
                "paired_speed",
                "compile_s",
            ],
        )
    )
    rates = ", ".join(f"{p} {g:.3g}" for p, g in gemm.items())
    print(f"matrix-multiply GFLOP/s: {rates}; oneDNN native bf16 kernels: {native_bf16}")
    print(f"auto here: {auto.describe()}")
    return result


def _arguments(p) -> None:
    p.add_argument("--models", default=None, help=f"comma list of {','.join(common.MODELS)}")
    p.add_argument("--precisions", default=None, help="comma list of 32,bf16,16")
    p.add_argument("--compile", action="store_true", help="add torch.compile variants (slow)")
    p.add_argument(
        "--compile-precisions", default=None, help="compile only these precisions (comma list)"
    )
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="optimizer steps per repetition")


def main(argv=None) -> dict:
    return common.run_main(NAME, __doc__, run, argv, _arguments)


if __name__ == "__main__":
    main()
