"""``python -m benchmarks.core_sharing``: do 1, 2 and 3 runs started side by side keep the
machine's one-run throughput?

Each run is the real command line (``python -m resnet_exp``, default model and data, W&B off) with
``trainer.num_threads=null``: each keeps the count it decided at start
(resnet_exp/training/threads.py), whatever else runs. A run's speed is the median
``throughput/img_s`` of its epochs after the first (the first includes start-up jitter); the
machine's speed is the sum over the runs. ``--compare`` adds the same runs with
``trainer.num_threads=<all cores>``. Other users' load still shows in the numbers:
``load_average`` is recorded.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import common


def _start(n: int, threads: str, root: Path, work: Path, args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "disabled", "XDG_RUNTIME_DIR": str(work / "runtime")}
    env.pop("OMP_NUM_THREADS", None)  # a run decides its own threads
    return subprocess.Popen(
        [sys.executable, "-m", "resnet_exp", f"data.root={root}", "logger=none",
         f"trainer.num_threads={threads}", f"hydra.run.dir={work / f'run{n}'}", *args],
        cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _speed(run_dir: Path) -> float:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    speeds = [r["throughput/img_s"] for r in rows if "throughput/img_s" in r]
    return statistics.median(speeds[1:] or speeds)


def side_by_side(runs: int, threads: str, root: Path, args: list[str]) -> list[float]:
    """Start ``runs`` runs at once; each one's img/s."""
    with tempfile.TemporaryDirectory(prefix="core-sharing-") as tmp:
        work = Path(tmp)
        procs = [_start(i, threads, root, work, args) for i in range(runs)]
        for proc in procs:
            _, err = proc.communicate(timeout=1800)
            if proc.returncode != 0:
                raise SystemExit(f"a run failed ({proc.returncode}): {err[-2000:]}")
        return [_speed(work / f"run{i}") for i in range(runs)]


def main(argv: list[str] | None = None) -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--runs", default="1,2,3", help="numbers of simultaneous runs")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train-subset", type=int, default=6000, help="images per epoch and run")
    p.add_argument("--compare", action="store_true", help="also every run on all cores")
    opts = p.parse_args(argv)
    if common.fashion_mnist("cpu", batch_size=8, train_subset=8) is None:
        raise SystemExit("needs Fashion-MNIST (Debian's dataset-fashion-mnist)")
    root = common.BENCH_DATA
    args = [f"trainer.epochs={opts.epochs}", f"data.train_subset={opts.train_subset}",
            "data.val_size=0", "data.test_subset=256", "trainer.progress=false",
            "trainer.device=cpu"]  # fmt: skip
    cores = len(os.sched_getaffinity(0))
    modes = {"lease (num_threads=null)": "null"}
    if opts.compare:
        modes[f"all cores (num_threads={cores})"] = str(cores)
    results: dict[str, dict[str, list[float]]] = {}
    print(f"{'mode':<28} {'runs':>4} {'img/s each':>24} {'machine':>8} {'vs 1 run':>8}")
    for mode, threads in modes.items():
        results[mode] = {}
        for runs in (int(r) for r in opts.runs.split(",")):
            speeds = side_by_side(runs, threads, root, args)
            results[mode][str(runs)] = speeds
            alone = sum(results[mode].get("1", speeds))
            each = ", ".join(f"{s:.0f}" for s in speeds)
            print(f"{mode:<28} {runs:>4} {each:>24} {sum(speeds):>8.0f} "
                  f"{sum(speeds) / alone:>8.2f}", flush=True)  # fmt: skip
    out = opts.out or common.RESULTS / "core_sharing.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**common.environment(), "load_average": common.load_average(), "cores": cores}
    out.write_text(json.dumps({"environment": env, "img_per_s": results}, indent=2) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
