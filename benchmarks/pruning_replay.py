"""What a pruner would have done to a finished Optuna search: its trials' epoch rows, replayed.

Reads a sweep folder a search left (``tuned.json`` and each trial's ``metrics.jsonl``), feeds each
study's trials to a fresh Optuna study with the pruner in the order they started (each trial's
objective so far after every epoch, as ``hydra/sweeper/pruner=...`` reports it), and prints per
study which trials the pruner would have stopped, after which epoch, the share of trial epochs it
would have saved, and whether the study's best trial survives (a pruned best changes the tuned
result). A replay, not a rerun: trials that ran side by side are taken one after the other.

    python -m benchmarks.pruning_replay SWEEP_DIR [--warmup 2] [--startup 2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import optuna

from hydra_plugins.resnet_exp_launcher._pruning import so_far
from resnet_exp.tracking.record import (
    RunRecord,
    read_metrics_file,
    read_tuned,
)


def replay(sweep: Path, warmup: int, startup: int) -> list[dict]:
    tuned = read_tuned(sweep) or {}
    folders = {}
    for path in sweep.glob("*/summary.json"):
        summary = RunRecord(path.parent).read_summary()
        folders[tuple(summary.overrides)] = path.parent
    timeline = sorted(tuned["timeline"], key=lambda r: r["start"])
    results = []
    for study in tuned["studies"]:
        pruner = optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup)
        replayed = optuna.create_study(pruner=pruner)
        jobs = [tuple(r["job"]) for r in timeline
                if r["kind"] == "trial" and r["study"] == study["study"]]  # fmt: skip
        epochs_run = epochs_all = 0
        stopped, best_lr = {}, min(study["trials"], key=lambda t: t["value"])["params"]
        for job in jobs:
            rows = read_metrics_file(RunRecord(folders[job]).metrics_path).epochs
            values = so_far(rows)
            trial = replayed.ask()
            lr = next(o.split("=")[1] for o in job if o.startswith("optimizer.lr="))
            ran = len(values)
            for epoch, value in enumerate(values, 1):
                trial.report(value, epoch)
                if trial.should_prune():
                    stopped[lr], ran = epoch, epoch
                    break
            replayed.tell(
                trial,
                values[-1] if lr not in stopped else None,
                state=optuna.trial.TrialState.PRUNED if lr in stopped else None,
            )
            epochs_run, epochs_all = epochs_run + ran, epochs_all + len(values)
        best = str(best_lr.get("optimizer.lr"))
        results.append(
            {
                "study": study["study"],
                "stopped": stopped,
                "best lr": best,
                "best pruned": best in stopped,
                "epochs saved": 1 - epochs_run / max(1, epochs_all),
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--warmup", type=int, default=2, help="MedianPruner's n_warmup_steps")
    parser.add_argument("--startup", type=int, default=2, help="MedianPruner's n_startup_trials")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for r in replay(args.sweep, args.warmup, args.startup):
        stopped = ", ".join(f"lr {lr} after epoch {e}" for lr, e in r["stopped"].items()) or "none"
        print(
            f"{r['study']}\n  pruned: {stopped}\n  best lr {r['best lr']}"
            f"{' PRUNED' if r['best pruned'] else ' kept'}; "
            f"trial epochs saved {100 * r['epochs saved']:.0f}%"
        )


if __name__ == "__main__":
    main()
