"""(d) Start-up time: ``python -m resnet_exp --cfg job`` / ``--help`` and ``import resnet_exp.app``.

Each command runs in a fresh interpreter (from a scratch directory), interleaved with the others;
``import torch`` is timed alongside as the yardstick; ``imports_torch`` is read from
``python -X importtime``.

    python -m benchmarks.startup [--quick] [--reps 5]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time

from benchmarks import common

NAME = "startup"

COMMANDS = {
    "cfg_job": ["-m", "resnet_exp", "--cfg", "job"],
    "help": ["-m", "resnet_exp", "--help"],
    "import_app": ["-c", "import resnet_exp.app"],
    "import_torch": ["-c", "import torch"],
}


def imported_modules(args: list[str], cwd: str) -> set[str]:
    """Top-level module names a command imports, from ``python -X importtime``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed: {proc.stderr[-2000:]}")
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def run(args) -> dict:
    quick = args.quick
    reps = args.reps or (2 if quick else 5)
    commands = dict(COMMANDS)
    if quick:
        commands.pop("help")  # Hydra's --help lists every config group: the slowest, same imports
    cwd = tempfile.mkdtemp(prefix="bench-startup-")
    load_before = common.load_average()

    def variant(argv):
        def go() -> float:
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, *argv], cwd=cwd, capture_output=True, text=True, timeout=300
            )
            elapsed = time.perf_counter() - start
            if proc.returncode != 0:
                raise RuntimeError(f"{argv} failed: {proc.stderr[-2000:]}")
            return elapsed

        return go

    times = common.interleaved({k: variant(v) for k, v in commands.items()}, reps=reps)
    rows = []
    for name, ts in times.items():
        mods = imported_modules(commands[name], cwd)
        rows.append(
            {
                "command": "python " + " ".join(commands[name]),
                "name": name,
                "median_s": common.median(ts),
                "min_s": min(ts),
                "imports_torch": "torch" in mods,
                "imports_wandb": "wandb" in mods,
            }
        )
    by = {r["name"]: r for r in rows}
    result = {
        **common.result_header(NAME, quick, {"python": sys.version.split()[0]}, load_before),
        "config": {"reps": reps},
        "rows": rows,
        "times_s": times,
        "cfg_job_imports_torch": by["cfg_job"]["imports_torch"],
        "cfg_job_s": by["cfg_job"]["median_s"],
    }
    print(f"== {NAME}: {reps} reps each, interleaved; load {load_before}")
    print(
        common.format_table(
            rows, ["command", "median_s", "min_s", "imports_torch", "imports_wandb"]
        )
    )
    return result


def main(argv=None) -> dict:
    return common.run_main(NAME, __doc__, run, argv)


if __name__ == "__main__":
    main()
