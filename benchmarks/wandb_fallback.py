"""W&B fallback time: how long ``WandbLogger.start`` takes to give up on an unreachable W&B and go
offline (SPEC §7: "falls back to offline within seconds"), measured inside a fresh interpreter.

The clock starts before ``resnet_exp.tracking.wandb_logger`` is imported and stops when ``start``
returns, so interpreter start-up is left out but wandb's own import is in. The unit tests only
check that the fallback happens and ends (tests/test_wandb_logger.py); the timing lives here.

    python -m benchmarks.wandb_fallback [--quick] [--reps 3]
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from benchmarks import common

NAME = "wandb_fallback"
BUDGET_S = 15.0  # what "within seconds" is held to
FAKE_KEY = "resnetexpfakekey0123456789abcdef01234567"  # well-formed, unusable

_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    t0 = time.monotonic()
    from resnet_exp.tracking.wandb_logger import WandbLogger
    args = json.loads(sys.argv[1])
    logger = WandbLogger(mode="online", init_timeout=args["init_timeout"])
    logger.start(Path(args["run_dir"]), {"a": 1}, name="job", group="g", tags=["t"])
    start_s = time.monotonic() - t0
    logger.finish("completed")
    print(json.dumps({"start_s": start_s, "mode": logger.info()["mode"]}))
    """
)


def _child(case: str, server_url: str | None, workdir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_SERVICE", "WANDB_API_KEY")}
    env.update(WANDB_DIR=str(workdir), WANDB_SILENT="true", WANDB_MODE="")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1])])
    if server_url:
        env.update(WANDB_API_KEY=FAKE_KEY, WANDB_BASE_URL=server_url)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{case}-", dir=workdir))
    args = json.dumps({"run_dir": str(run_dir), "init_timeout": 2})
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{case}: child failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(args) -> dict:
    reps = args.reps or (1 if args.quick else 3)
    workdir = Path(tempfile.mkdtemp(prefix="bench-wandb-"))
    load_before = common.load_average()
    with socket.socket() as mute:  # accepts connections, never answers
        mute.bind(("127.0.0.1", 0))
        mute.listen(64)
        cases = {
            "no_key": None,
            "key_refused": "http://127.0.0.1:9",
            "key_mute_server": f"http://127.0.0.1:{mute.getsockname()[1]}",
        }
        times: dict[str, list[float]] = {case: [] for case in cases}
        modes: dict[str, set[str]] = {case: set() for case in cases}
        for _ in range(reps):
            for case, url in cases.items():
                out = _child(case, url, workdir)
                times[case].append(out["start_s"])
                modes[case].add(out["mode"])
    rows = [
        {
            "case": case,
            "median_s": common.median(ts),
            "max_s": max(ts),
            "mode": ",".join(sorted(modes[case])),
            "within_budget": max(ts) < BUDGET_S,
        }
        for case, ts in times.items()
    ]
    print(f"== {NAME}: {reps} reps; budget {BUDGET_S} s; load {load_before}")
    print(common.format_table(rows, ["case", "median_s", "max_s", "mode", "within_budget"]))
    return {
        **common.result_header(NAME, args.quick, {"python": sys.version.split()[0]}, load_before),
        "config": {"reps": reps, "init_timeout_s": 2, "budget_s": BUDGET_S},
        "rows": rows,
        "times_s": times,
    }


def main(argv=None) -> dict:
    return common.run_main(NAME, __doc__, run, argv)


if __name__ == "__main__":
    main()
