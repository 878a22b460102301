"""(b) Input pipeline throughput: the device-resident tensor loader vs torchvision's DataLoader.

Fashion-MNIST with augmentation on (pad-4 crop + flip, the costliest setting): img/s of each
pipeline alone, and its share of a ResNet-20 training step (``batch time / (batch time + step
time)``). A repetition reads ``--batches`` batches through a fresh epoch iterator, so the
DataLoader's worker start-up (paid once per epoch in a run) is included once per repetition.
``torchvision_w2_noaug`` is the kind of pipeline the Lightning peer in (e) uses: per-sample
conversion and normalisation, no augmentation, two workers.

    python -m benchmarks.input_pipeline [--quick] [--batches 40] [--batch-size 128]
"""

from __future__ import annotations

from benchmarks import common
from benchmarks.train_step import make_bare_step, optimizer_for

NAME = "input_pipeline"


def run(args) -> dict:
    import torch

    device = common.pick_device(args.device, args.threads)
    quick = args.quick
    batch_size = args.batch_size or (64 if quick else 128)
    count = args.batches or (4 if quick else 40)
    reps = args.reps or (3 if quick else 7)
    subset = batch_size * count + 2
    load_before = common.load_average()

    pipelines = {}
    dm = common.fashion_mnist(device, batch_size=batch_size, train_subset=subset, augment=True)
    if dm is None:
        source = "synthetic"
        data, _ = common.batches(device, batch_size=batch_size, count=count)
        pipelines["in_memory_list"] = lambda epoch: iter(data)
    else:
        source = "fashionmnist"
        pipelines["tensor"] = dm.train_batches
        for name, augment, workers in (
            ("torchvision_w0", True, 0),
            ("torchvision_w2", True, 2),
            ("torchvision_w2_noaug", False, 2),
        ):
            tv = common.fashion_mnist(
                device,
                batch_size=batch_size,
                train_subset=subset,
                augment=augment,
                loader="torchvision",
                num_workers=workers,
            )
            pipelines[name] = tv.train_batches

    epoch_counter = {"n": 0}

    def pipeline_variant(make):
        def go() -> float:
            epoch_counter["n"] += 1
            it = make(epoch_counter["n"])

            def work():
                for x, _ in it:
                    x.sum()  # touch the data, as the model would

            return common.timed(work, device)

        return go

    torch.manual_seed(0)
    model = common.build_model("resnet20").to(device)
    step = make_bare_step(model, *optimizer_for(model), None, False, device)
    fixed, _ = common.batches(device, batch_size=batch_size, count=min(count, 4))

    def model_step() -> float:
        def work():
            loss = None
            for x, y in fixed:
                loss = step(x, y)
            loss.item()

        return common.timed(work, device) / len(fixed) * count  # scaled to `count` steps

    variants = {k: pipeline_variant(v) for k, v in pipelines.items()}
    variants["resnet20_step"] = model_step
    times = common.interleaved(variants, reps=reps)
    step_s = common.median(times["resnet20_step"]) / count
    rows = []
    for name, ts in times.items():
        if name == "resnet20_step":
            continue
        per_batch = common.median(ts) / count
        rows.append(
            {
                "pipeline": name,
                "img_per_s": batch_size / per_batch,
                "ms_per_batch": 1000 * per_batch,
                "share_of_step": per_batch / (per_batch + step_s),
            }
        )
    rows.append(
        {
            "pipeline": "resnet20_step (model only)",
            "img_per_s": batch_size / step_s,
            "ms_per_batch": 1000 * step_s,
            "share_of_step": "",
        }
    )
    result = {
        **common.result_header(NAME, quick, common.environment(device), load_before),
        "config": {
            "batch_size": batch_size,
            "batches_per_rep": count,
            "reps": reps,
            "augment": True,
            "data": source,
        },
        "rows": rows,
        "times_s": times,
        "resnet20_step_ms": 1000 * step_s,
    }
    print(
        f"== {NAME}: batch {batch_size}, {count} batches x {reps} reps, {source}, {device}; "
        f"load {load_before}"
    )
    print(common.format_table(rows, ["pipeline", "img_per_s", "ms_per_batch", "share_of_step"]))
    return result


def _arguments(p) -> None:
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--batches", type=int, default=None, help="batches per repetition")


def main(argv=None) -> dict:
    return common.run_main(NAME, __doc__, run, argv, _arguments)


if __name__ == "__main__":
    main()
