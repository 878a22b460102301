"""experiment=degradation_quick_tuned: wall time, slot use, the tuned lrs and the two verdicts.

Runs ``python -m resnet_exp experiment=degradation_quick_tuned`` into a fresh sweep folder (or,
with ``--sweep DIR``, reads one that ran) and reports: the wall time (the budget is 15 min on 2
cores with AVX512-BF16), the load average before and after (the machine may be shared), the
timeline of jobs per slot from ``tuned.json`` (idle time of a slot while jobs remained:
none means no batch barrier), each configuration's best lr, and the report's two verdicts.
``--quick``: a 2-trial search over two lrs, 2 seeds, 1 epoch (checks the plumbing, no verdict).

    python -m benchmarks.tuned_study [--sweep outputs/multirun/tuned] [--quick]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common
from resnet_exp.report.aggregate import collect_runs
from resnet_exp.report.tuned import tuned_section
from resnet_exp.tracking.record import TUNED_JSON, read_tuned

NAME = "tuned_study"
DATA = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist (.ci/run installs it)
QUICK = ["optimizer.lr=choice(0.0095,0.019)", "hydra.sweeper.n_trials=2",
         "seed=0,1", "trainer.epochs=1"]  # fmt: skip


def slot_use(rows: list[dict]) -> dict:
    """Per slot: busy seconds, and its idle gaps between jobs while others were yet to start."""
    last_start = max(r["start"] for r in rows)
    slots = {}
    for slot in sorted({r["slot"] for r in rows}):
        mine = sorted((r for r in rows if r["slot"] == slot), key=lambda r: r["start"])
        gaps = [b["start"] - a["end"] for a, b in zip(mine, mine[1:]) if a["end"] < last_start]
        slots[slot] = {"jobs": len(mine), "busy_s": sum(r["end"] - r["start"] for r in mine),
                       "max_gap_s": max(gaps, default=0.0), "gaps_s": sum(gaps)}  # fmt: skip
    return slots


def run(args) -> dict:
    load_before = common.load_average()
    sweep = args.sweep or Path(tempfile.mkdtemp(prefix="tuned_study-")) / "sweep"
    wall = None
    if args.sweep is None:
        cmd = [sys.executable, "-m", "resnet_exp", "experiment=degradation_quick_tuned",
               f"data.root={DATA}", "logger=none", f"hydra.sweep.dir={sweep}",
               *(QUICK if args.quick else [])]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - start
    rows = json.loads((sweep / TUNED_JSON).read_text())["timeline"]
    t0 = min(r["start"] for r in rows)
    timeline = [{"slot": r["slot"], "kind": r["kind"], "job": " ".join(r["job"]),
                 "start_s": round(r["start"] - t0, 1), "end_s": round(r["end"] - t0, 1),
                 "value": r["value"]} for r in sorted(rows, key=lambda r: r["start"])]  # fmt: skip
    print(common.format_table(timeline, ["slot", "kind", "start_s", "end_s", "value", "job"]))
    section = tuned_section(collect_runs(sweep), sweep)
    print("\n".join(section))
    studies = read_tuned(sweep)["studies"]
    done = {s["study"]: [t for t in s["trials"] if t["value"] is not None] for s in studies}
    best = {name: min(ts, key=lambda t: t["value"])["params"] for name, ts in done.items() if ts}
    return {
        **common.result_header(NAME, args.quick, common.environment(), load_before),
        "sweep": str(sweep),
        "wall_s": wall,
        "jobs_span_s": max(r["end"] for r in rows) - t0,
        "slots": slot_use(rows),
        "best_params": best,
        "verdicts": [line for line in section if line.startswith(("- At the", "**The", "**Whe"))],
        "console_end": subprocess.run(
            [sys.executable, "-m", "resnet_exp.report", str(sweep)], capture_output=True, text=True
        ).stdout,
        "timeline": timeline,
    }


def main(argv=None) -> dict:
    def more(p):
        p.add_argument("--sweep", type=Path, default=None, help="read this sweep folder instead")

    return common.run_main(NAME, __doc__, run, argv, more)


if __name__ == "__main__":
    main()
