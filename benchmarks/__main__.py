"""``python -m benchmarks``: every benchmark, (a)-(e), at its small (``--quick``) size, in turn.

Extra arguments (e.g. ``--device cpu``, ``--threads 2``, ``--reps 1``) are passed to each;
``--full`` drops ``--quick``. Each benchmark prints its table and writes
``benchmarks/results/<name>.json``.
(e), the Lightning peer, runs when the ``bench`` extra is installed and Fashion-MNIST is at hand;
otherwise a line says why it was skipped.
"""

from __future__ import annotations

import sys

from benchmarks import input_pipeline, lightning_peer, speed_switches, startup, train_step

ALL = {
    "train_step": train_step,  # (a)
    "input_pipeline": input_pipeline,  # (b)
    "speed_switches": speed_switches,  # (c)
    "startup": startup,  # (d)
    "lightning_peer": lightning_peer,  # (e)
}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--full" in argv:
        argv.remove("--full")
    elif "--quick" not in argv:
        argv.append("--quick")
    for name, module in ALL.items():
        print(f"\n# benchmarks.{name}", flush=True)
        if name == "startup":  # spawns fresh interpreters: device and threads do not apply
            module.main([a for a in argv if a == "--quick"])
            continue
        if name == "lightning_peer" and (why := lightning_peer.available()) is not None:
            print(f"skipped: {why}", flush=True)
            continue
        module.main(argv)


if __name__ == "__main__":
    main()
