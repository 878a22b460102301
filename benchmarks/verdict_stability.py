"""How often would a new seed set give a different headline? Measured from many replicate runs.

Give it one or more sweep folders of the same study that together hold N > k seeds per
configuration (e.g. `experiment=degradation_quick seed=0,...,11`). Two estimates of the chance that
a k-seed run of the study does not end in the headline "degradation reproduced, residual family
not degrading":

- resampling: every k-subset of the seed values seen (the same seeds for every configuration, as a
  real seed set is), each decided by the report's own rules (`report.study.decide`);
- simulation: each configuration's final training errors drawn from a normal distribution fitted to
  all its runs, `--sims` seed sets of k, decided the same way; once on the error itself and once
  on its logit (an error rate is a proportion: a skewed spread such as a deep plain net's, which
  stalls at anything from 30% to 65%, is fitted better there, and no draw leaves 0-100%).

    python -m benchmarks.verdict_stability outputs/multirun/A outputs/multirun/B --k 3
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import random
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from resnet_exp.report.aggregate import RunResult, collect_runs
from resnet_exp.report.claims import REPRODUCED
from resnet_exp.report.study import decide


def _by_config(runs: Sequence[RunResult]) -> dict[str, dict[int, RunResult]]:
    """Completed runs by configuration (block and depth: sweeps of the same study run with other
    overrides, such as logger=none, count as the same configuration) and seed."""
    table: dict[str, dict[int, RunResult]] = {}
    for run in runs:
        if run.ok and run.seed is not None and run.final_train_err is not None:
            table.setdefault(f"{run.block}-{run.depth}", {})[run.seed] = run
    return table


def resampled(runs: Sequence[RunResult], k: int) -> Counter[str]:
    """Headline outcome of every k-subset of the seeds every configuration has."""
    table = _by_config(runs)
    shared = sorted(set.intersection(*(set(seeds) for seeds in table.values())))
    outcomes: Counter[str] = Counter()
    for seeds in itertools.combinations(shared, k):
        chosen = [table[config][seed] for config in table for seed in seeds]
        outcomes[decide(chosen).headline_outcome] += 1
    return outcomes


def _logit(err_pct: float) -> float:
    return math.log(err_pct / (100.0 - err_pct))


def _expit(x: float) -> float:
    return 100.0 / (1.0 + math.exp(-x))


SCALES = {"normal": (lambda x: x, lambda x: x), "logit-normal": (_logit, _expit)}


def simulated(
    runs: Sequence[RunResult], k: int, sims: int, scale: str = "normal", seed: int = 0
) -> Counter[str]:
    """Headline outcome of `sims` seed sets of k drawn from each configuration's normal fitted on
    `scale` (a key of SCALES)."""
    forward, back = SCALES[scale]
    rng = random.Random(seed)
    table = _by_config(runs)
    fitted = {}
    for config, by_seed in table.items():
        values = [forward(r.final_train_err) for r in by_seed.values()]
        fitted[config] = (
            next(iter(by_seed.values())),
            statistics.fmean(values),
            statistics.stdev(values),
        )
    outcomes: Counter[str] = Counter()
    for _ in range(sims):
        drawn = [
            dataclasses.replace(
                template, final_train_err=back(rng.gauss(mean, std)), seed=i, steps=[]
            )
            for template, mean, std in fitted.values()
            for i in range(k)
        ]
        outcomes[decide(drawn).headline_outcome] += 1
    return outcomes


def _describe(name: str, outcomes: Counter[str]) -> str:
    total = sum(outcomes.values())
    if not total:
        return f"{name}: none (fewer seeds per configuration than a set holds)"
    other = total - outcomes[REPRODUCED]
    parts = ", ".join(f"{k}: {v}" for k, v in outcomes.most_common())
    return f"{name}: {other}/{total} = {other / total:.2%} give another headline ({parts})"


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweeps", nargs="+", type=Path)
    p.add_argument("--k", type=int, default=3, help="seeds per configuration in one study")
    p.add_argument("--sims", type=int, default=20000)
    args = p.parse_args(argv)
    runs = [run for sweep in args.sweeps for run in collect_runs(sweep)]
    table = _by_config(runs)
    for config, by_seed in sorted(table.items()):
        values = [r.final_train_err for r in by_seed.values()]
        print(
            f"{config}: n={len(values)} mean {statistics.fmean(values):.2f} "
            f"sd {statistics.stdev(values) if len(values) > 1 else float('nan'):.2f} "
            f"min {min(values):.2f} max {max(values):.2f}"
        )
    print(_describe(f"resampled {args.k}-seed sets", resampled(runs, args.k)))
    for scale in SCALES:
        outcomes = simulated(runs, args.k, args.sims, scale)
        print(_describe(f"simulated {args.k}-seed sets, {scale}", outcomes))


if __name__ == "__main__":
    main()
