"""``python -m benchmarks``: every benchmark at its small (``--quick``) size, one after another.

Extra arguments (e.g. ``--device cpu``, ``--threads 2``) are passed to each; ``--full`` drops
``--quick``. Each benchmark prints its table and writes ``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import sys

from benchmarks import input_pipeline, speed_switches, startup, train_step

ALL = {
    "train_step": train_step,
    "input_pipeline": input_pipeline,
    "speed_switches": speed_switches,
    "startup": startup,
}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--full" in argv:
        argv.remove("--full")
    elif "--quick" not in argv:
        argv.append("--quick")
    shared = [a for a in argv if a != "--device" and not a.startswith("--threads")]
    for name, module in ALL.items():
        print(f"\n# benchmarks.{name}", flush=True)
        module.main(argv if name != "startup" else [a for a in shared if a == "--quick"])


if __name__ == "__main__":
    main()
