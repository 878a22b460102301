"""(e) resnet_exp vs a typical PyTorch Lightning setup: same ResNet-20 recipe, data and epochs.

The peer is the recipe written the usual Lightning way: resnet_exp's ResNet-20 (BasicBlock,
in_channels=1) as a LightningModule, SGD lr 0.1 / momentum 0.9 / wd 1e-4, LR /10 at 50% and 75%
of all steps (stepped per step), fed by torchvision's FashionMNIST with per-sample transforms
(ToTensor + Normalize) in a DataLoader with ``num_workers=2``, batch 128, fp32, NCHW. resnet_exp
runs with its defaults (``python -m resnet_exp`` in a subprocess: tensor loader, ``auto`` speed
switches) on the same first ``--train`` training images (no validation split), the same first
``--test`` test images and the same epochs. By default each runs with its own default thread
count (torch's: one intra-op thread per core, as a Lightning user gets it, with the DataLoader's
two worker processes on the same cores; resnet_exp's ``trainer.num_threads: null``, the same
count, no workers). ``--threads N`` pins both to N intra-op threads instead, which isolates the
per-step difference from the contention for cores.

Training throughput = images trained / summed training-epoch wall time (for Lightning from
``on_train_epoch_start`` to ``on_train_epoch_end``, so DataLoader worker start-up is included, as it
is each epoch; for resnet_exp the ``time/epoch_s`` it records). Runs alternate (resnet_exp,
Lightning, Lightning, resnet_exp, ...) and the paired ratio is the median of per-round ratios.

Needs ``pip install -e .[bench]`` (lightning; keep the installed torch: ``pip install --no-deps
lightning lightning-utilities torchmetrics`` works where torch is pinned) and Fashion-MNIST: under
``--root`` (``<root>/FashionMNIST/raw``), else ``$RESNET_EXP_DATA``, else unpacked from Debian's
``dataset-fashion-mnist`` as resnet_exp itself does.

    python -m benchmarks.lightning_peer [--quick] [--root DIR] [--train N] [--test N] [--epochs N]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common

NAME = "lightning_peer"
MEAN, STD = 0.2860, 0.3530  # resnet_exp/data/facts.py


def run_resnet_exp(args, threads: int, workdir: Path) -> dict:
    """One ``python -m resnet_exp`` run with its defaults on the subset; its summary and epochs."""
    run_dir = Path(tempfile.mkdtemp(prefix="resnet_exp-", dir=workdir))
    overrides = [
        f"data.root={args.root}",
        f"data.train_subset={args.train}",
        f"data.test_subset={args.test}",
        "data.val_size=0",
        f"trainer.epochs={args.epochs}",
        *([f"trainer.num_threads={threads}"] if threads else []),
        f"trainer.device={args.device_name}",
        "trainer.progress=false",
        "trainer.resume=never",
        "logger=none",
        f"hydra.run.dir={run_dir}",
    ]
    cmd = [sys.executable, "-m", "resnet_exp", *overrides]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"resnet_exp failed ({proc.returncode}): {' '.join(cmd)}")
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "time/epoch_s" in r]
    train_s = sum(r["time/epoch_s"] for r in rows)
    images = sum(r["throughput/img_s"] * r["time/epoch_s"] for r in rows)
    final = summary["final"]
    return {
        "train_s": train_s,
        "img_s": images / train_s,
        "test_acc": 100.0 - final["test/err"],
        "process_wall_s": wall,
        "speed": summary.get("speed"),
        "command": " ".join(["python -m resnet_exp", *overrides]),
    }


def make_lightning_runner(args, device):
    import logging
    import warnings

    import lightning.pytorch as pl

    # After the import: Lightning sets its loggers to INFO when it is imported.
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lightning.fabric").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    warnings.filterwarnings("ignore", ".*`srun` command is available.*")
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    from resnet_exp.models import ResNet
    from resnet_exp.models.blocks import BasicBlock

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))])
    train_set = Subset(
        datasets.FashionMNIST(args.root, train=True, download=False, transform=tf),
        range(args.train),
    )
    test_set = Subset(
        datasets.FashionMNIST(args.root, train=False, download=False, transform=tf),
        range(args.test),
    )

    class LitResNet(pl.LightningModule):
        def __init__(self, total_steps: int):
            super().__init__()
            self.net = ResNet(BasicBlock, 20, in_channels=1)
            self.total_steps = total_steps
            self.correct = 0
            self.seen = 0

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.cross_entropy(self(x), y)
            self.log("train_loss", loss, on_step=False, on_epoch=True)
            return loss

        def test_step(self, batch, batch_idx):
            x, y = batch
            self.correct += int((self(x).argmax(1) == y).sum())
            self.seen += y.numel()

        def configure_optimizers(self):
            opt = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
            milestones = [int(0.5 * self.total_steps), int(0.75 * self.total_steps)]
            sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=0.1)
            return [opt], [{"scheduler": sched, "interval": "step"}]

    class EpochTimer(pl.Callback):
        def __init__(self):
            self.seconds = 0.0
            self._start = 0.0

        def on_train_epoch_start(self, trainer, module):
            self._start = time.perf_counter()

        def on_train_epoch_end(self, trainer, module):
            common.sync(device)
            self.seconds += time.perf_counter() - self._start

    def run() -> dict:
        pl.seed_everything(0, workers=True, verbose=False)
        train_loader = DataLoader(
            train_set,
            batch_size=128,
            shuffle=True,
            num_workers=2,
            persistent_workers=False,
            pin_memory=device.type == "cuda",
        )
        test_loader = DataLoader(test_set, batch_size=512, num_workers=2)
        module = LitResNet(total_steps=args.epochs * len(train_loader))
        timer = EpochTimer()
        trainer = pl.Trainer(
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=1,
            max_epochs=args.epochs,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            callbacks=[timer],
        )
        start = time.perf_counter()
        trainer.fit(module, train_loader)
        trainer.test(module, test_loader, verbose=False)
        wall = time.perf_counter() - start
        return {
            "train_s": timer.seconds,
            "img_s": args.epochs * len(train_set) / timer.seconds,
            "test_acc": 100.0 * module.correct / max(module.seen, 1),
            "fit_test_wall_s": wall,
        }

    return run


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def data_root(root: str | None) -> Path:
    """Where Fashion-MNIST lives: ``--root``, else ``$RESNET_EXP_DATA``, else the benchmarks' shared
    folder, unpacked from Debian's ``dataset-fashion-mnist`` when missing (raises
    ``DatasetNotFound`` with resnet_exp's explanation when there is no copy anywhere)."""
    from resnet_exp.data.sources import fetch_missing

    path = Path(root or os.environ.get("RESNET_EXP_DATA") or common.BENCH_DATA)
    fetch_missing("fashionmnist", path, download=False)
    return path


def available() -> str | None:
    """Why (e) cannot run here, or None when it can."""
    import importlib.util

    if importlib.util.find_spec("lightning") is None:
        return "lightning is not installed (pip install -e .[bench])"
    try:
        data_root(None)
    except Exception as exc:  # DatasetNotFound: its message says where to get the data
        return f"no Fashion-MNIST: {exc}"
    return None


def add_arguments(p) -> None:
    p.add_argument("--root", default=None, help="folder holding FashionMNIST/raw")
    p.add_argument("--train", type=int, default=None, help="first N training images")
    p.add_argument("--test", type=int, default=None, help="first N test images")
    p.add_argument("--epochs", type=int, default=None)


def run(args) -> dict:
    quick = args.quick
    args.root = str(data_root(args.root))
    args.train = args.train or (5000 if quick else 60000)
    args.test = args.test or (2000 if quick else 10000)
    args.epochs = args.epochs or (1 if quick else 10)
    reps = args.reps or 2

    # Unlike the micro-benchmarks, the default here is each setup's own default thread count.
    threads = args.threads or 0
    device = common.pick_device(args.device, threads or None, keep_default=not threads)
    args.device_name = device.type
    load_before = common.load_average()
    runner = make_lightning_runner(args, device)
    workdir = Path(tempfile.mkdtemp(prefix="lightning_peer-"))
    os.environ.setdefault("WANDB_MODE", "disabled")

    results: dict[str, list[dict]] = {"resnet_exp": [], "lightning": []}
    for rep in range(reps):
        order = ["resnet_exp", "lightning"] if rep % 2 == 0 else ["lightning", "resnet_exp"]
        for name in order:
            r = run_resnet_exp(args, threads, workdir) if name == "resnet_exp" else runner()
            results[name].append(r)
            print(
                f"rep {rep} {name}: {r['img_s']:.0f} img/s, test acc {r['test_acc']:.2f}%",
                flush=True,
            )

    ours, peer = results["resnet_exp"], results["lightning"]
    paired = common.median([o["img_s"] / q["img_s"] for o, q in zip(ours, peer)])
    rows = []
    for name, rs in (("resnet_exp (defaults, tensor loader)", ours), ("Lightning peer", peer)):
        rows.append(
            {
                "setup": name,
                "train img/s": common.median([r["img_s"] for r in rs]),
                "train s": common.median([r["train_s"] for r in rs]),
                "test acc %": common.median([r["test_acc"] for r in rs]),
            }
        )
    rows[0]["speed vs Lightning"] = paired
    rows[1]["speed vs Lightning"] = 1.0
    accuracy_gap = rows[0]["test acc %"] - rows[1]["test acc %"]
    thread_note = f"{threads} thread(s) each" if threads else f"default threads ({torch_threads()})"
    header = common.result_header(NAME, quick, common.environment(device), load_before)
    print(
        f"\n{args.train} train / {args.test} test images, {args.epochs} epoch(s), batch 128, "
        f"{thread_note}, {reps} interleaved reps; "
        f"load {load_before} -> {header['load_average_after']}"
    )
    print(common.format_table(rows, ["setup", "train img/s", "train s", "test acc %",
                                     "speed vs Lightning"]))  # fmt: skip
    print(
        f"target (e): >= 1.5x at equal accuracy (within 0.5 points) -> {paired:.2f}x, "
        f"accuracy {accuracy_gap:+.2f} points"
    )
    return {
        **header,
        "config": {
            "train_images": args.train,
            "test_images": args.test,
            "epochs": args.epochs,
            "reps": reps,
            "threads": threads or f"defaults ({torch_threads()})",
        },
        "speed_vs_lightning_paired": paired,
        "accuracy_gap_points": accuracy_gap,
        "rows": rows,
        "runs": results,
    }


def main(argv: list[str] | None = None) -> dict:
    return common.run_main(NAME, __doc__, run, argv, add_arguments)


if __name__ == "__main__":
    main()
