"""The study's numbers: replicate groups per configuration (its seeds are replicates), each kind's
depth effect on final training error, and how much of the plain penalty the residual kind avoids.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resnet_exp.atomic import atomic_write
from resnet_exp.report.aggregate import CSV_COLUMNS, RunResult, csv_cells
from resnet_exp.report.claims import Claim, most_avoided, rises, share_avoided, stays_below
from resnet_exp.report.convergence import Convergence, convergence
from resnet_exp.report.stats import (
    PERCENT,
    ContrastParts,
    Effect,
    Spread,
    bounded,
    contrast_parts,
    depth_weights,
    interval,
    spread,
)
from resnet_exp.tracking.identity import parse_key
from resnet_exp.tracking.record import kind

METRICS = (
    ("final_train_err", "final training error"),
    ("best_val_err", "best validation error"),
    ("test_err_at_best_val", "test error at best validation"),
)


@dataclass
class ConfigGroup:
    """The replicates of one configuration (all statuses) and the statistics of completed ones."""

    config: str
    runs: list[RunResult]
    stats: dict[str, Spread | None] = field(default_factory=dict)

    @property
    def first(self) -> RunResult:
        return self.runs[0]

    @property
    def completed(self) -> list[RunResult]:
        return [r for r in self.runs if r.ok]

    @property
    def seeds(self) -> list[int]:
        return sorted({r.seed for r in self.runs if r.seed is not None})


def config_groups(runs: Sequence[RunResult]) -> list[ConfigGroup]:
    """Runs grouped by (dataset, configuration without seed), in report order."""
    groups: dict[tuple[str | None, str], ConfigGroup] = {}
    for run in sorted(runs, key=RunResult.sort_key):
        key = (run.dataset, run.configuration or run.config)
        groups.setdefault(key, ConfigGroup(run.config, [])).runs.append(run)
    for group in groups.values():
        done = group.completed
        group.stats = {
            name: bounded(spread(getattr(r, name) for r in done), *PERCENT) for name, _ in METRICS
        }
    return list(groups.values())


def train_errors_by_depth(runs: Sequence[RunResult], residual: bool) -> dict[int, list[float]]:
    """Final training errors of completed runs of one family, per depth (ascending)."""
    by_depth: dict[int, list[float]] = {}
    for run in runs:
        error = run.final_train_err
        usable = run.ok and run.depth is not None and error is not None and math.isfinite(error)
        if usable and bool(run.residual) == residual:
            by_depth.setdefault(run.depth, []).append(float(run.final_train_err))
    return dict(sorted(by_depth.items()))


# What a study varies within one setup: a setup is the rest of what a job computes.
_STUDIED = ("seed", "model.depth", "model.block.")


def _setup_of(run: RunResult) -> dict[str, Any]:
    """The run's identity without the study's variables; by dataset where it has none."""
    flat = parse_key(run.identity)
    if flat is None:
        return {"data.name": run.dataset, "identity": "unknown"}
    return {k: v for k, v in flat.items() if not k.startswith(_STUDIED)}


def setups(runs: Sequence[RunResult]) -> list[tuple[str, list[RunResult]]]:
    """The runs split by setup (a preset at batch 24 and its extension at batch 128 are two), each
    labelled by the values that tell it apart ("" when there is one): a verdict never pools them."""
    found: dict[str, list[RunResult]] = {}
    for run in runs:
        found.setdefault(json.dumps(_setup_of(run), sort_keys=True), []).append(run)
    if len(found) < 2:
        return [("", list(runs))]
    flat = {key: json.loads(key) for key in found}
    differ = sorted(
        {k for f in flat.values() for k in f if len({repr(g.get(k)) for g in flat.values()}) > 1}
    )
    labels = [[f"{k}={f[k]}" for k in differ if f.get(k) is not None] for f in flat.values()]
    return [(", ".join(parts[:4]) + (", …" if len(parts) > 4 else ""), members)
            for parts, members in zip(labels, found.values())]  # fmt: skip


def unpooled(runs: Sequence[RunResult]) -> str | None:
    """Why one verdict cannot be drawn from `runs` (several setups, or a family and depth with
    completed runs of several configurations), else None."""
    found = setups(runs)
    if len(found) > 1:
        return (
            f"this sweep holds {len(found)} setups ({'; '.join(label for label, _ in found)}), and "
            "runs of different setups are never pooled: each has its own verdict."
        )
    configs: dict[tuple[bool, int], dict[str, str]] = {}
    for run in runs:
        if run.ok and run.depth is not None:
            key = (bool(run.residual), run.depth)
            configs.setdefault(key, {})[run.configuration or run.config] = run.block or "?"
    mixed = [f"{kind(res)} depth {depth} ({', '.join(sorted(set(c.values())))})"
             for (res, depth), c in sorted(configs.items()) if len(c) > 1]  # fmt: skip
    if not mixed:
        return None
    return (
        f"completed runs of several configurations share a family and depth ({'; '.join(mixed)}); "
        "a verdict compares one configuration per family and depth, so none is drawn here."
    )


@dataclass
class FamilyEffect:
    """How one family's mean final training error changes from its shallowest to its deepest
    depth: the least-squares line through every depth's mean, as a contrast of the depth means
    (with two depths exactly deepest minus shallowest), with Welch-Satterthwaite's interval."""

    family: str  # record.PLAIN | record.RESIDUAL
    depths: list[int]
    means: list[float]
    counts: list[int]
    groups: list[list[float]]
    parts: ContrastParts
    effect: Effect

    @property
    def single_seed(self) -> bool:
        return min(self.counts) < 2


def family_effect(runs: Sequence[RunResult], residual: bool) -> FamilyEffect | None:
    """The family's depth effect, or None with fewer than two completed depths."""
    by_depth = train_errors_by_depth(runs, residual)
    if len(by_depth) < 2:
        return None
    depths, groups = list(by_depth), list(by_depth.values())
    parts = contrast_parts(groups, depth_weights(depths))
    means, counts = [sum(v) / len(v) for v in groups], [len(v) for v in groups]
    return FamilyEffect(kind(residual), depths, means, counts, groups, parts, interval(parts))


def penalty_avoided_parts(plain: FamilyEffect, residual: FamilyEffect) -> ContrastParts:
    """Plain depth effect minus residual depth effect as one contrast over both families' groups."""
    weights = [*depth_weights(plain.depths), *(-w for w in depth_weights(residual.depths))]
    return contrast_parts([*plain.groups, *residual.groups], weights)


@dataclass(frozen=True)
class Verdict:
    """The study's three claims decided from the completed runs of one dataset (claims None where
    a family has fewer than two depths, or a configuration a single seed)."""

    plain: FamilyEffect | None
    residual: FamilyEffect | None
    plain_claim: Claim | None = None
    residual_claim: Claim | None = None
    avoided: Claim | None = None
    share: Effect | None = None
    most: str | None = None  # the share's outcome against one half (claims.most_avoided)


def decide(runs: Sequence[RunResult]) -> Verdict:
    """Each claim's outcome from the runs' final training errors (claims.py has the rules)."""
    plain, resid = family_effect(runs, False), family_effect(runs, True)
    if plain is None or plain.single_seed or (resid is not None and resid.single_seed):
        return Verdict(plain, resid)
    if resid is None:
        return Verdict(plain, resid, rises(plain.parts))
    gap, share = penalty_avoided_parts(plain, resid), share_avoided(plain.parts, resid.parts)
    claims = rises(plain.parts), stays_below(resid.parts, gap), rises(gap)
    return Verdict(plain, resid, *claims, share=share, most=most_avoided(share))


def run_convergence(run: RunResult) -> Convergence | None:
    """How much the run's training error still fell at its end (None without per-step rows)."""
    last = run.metrics[-1].get("step") if run.metrics else None
    return convergence(run.steps, last if isinstance(last, int) else None)


def still_falling(run: RunResult) -> bool:
    found = run_convergence(run)
    return found is not None and found.still_falling


# summary.csv: one row per configuration, then one per run

STAT_FIELDS = ("mean", "std", "min", "max", "ci_low", "ci_high")
SUMMARY_COLUMNS = (
    "row",  # "config" | "run"
    "config",
    "seed",
    *CSV_COLUMNS,
    "late_fall_pp",  # training error's fall over the last 15% of steps (convergence.py)
    "still_falling",  # run: 1/0; configuration: how many of its runs
    "n",  # completed replicates in the statistics
    "n_runs",
    *(f"{name}_{stat}" for name, _ in METRICS for stat in STAT_FIELDS),
)


def _num(value: Any) -> Any:
    """A summary.csv cell: floats in full (repr: they round-trip), none or non-finite empty, text
    a spreadsheet would evaluate (a leading =, +, -, @) behind a ' (a number is not text: a
    negative one stays a number)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return f"'{value}"
    return repr(value) if isinstance(value, float) else value


def csv_row(run: RunResult) -> dict[str, Any]:
    """One summary.csv row (`_num` cells; booleans lower-case)."""
    cells = csv_cells(run).items()
    return {k: str(v).lower() if isinstance(v, bool) else _num(v) for k, v in cells}


def config_row(group: ConfigGroup) -> dict[str, Any]:
    """The statistics row of one configuration (shared facts from its first run)."""
    first = csv_row(group.first)
    row: dict[str, Any] = {"row": "config", "config": _num(group.config), "seed": ""}
    for key in ("block", "residual", "depth", "shortcut", "params", "flops", "epochs"):
        row[key] = first[key]
    row["job"] = row["config"]
    row["n"], row["n_runs"] = len(group.completed), len(group.runs)
    row["still_falling"] = sum(still_falling(r) for r in group.completed)
    statuses = Counter(r.status for r in group.runs)
    row["status"] = " ".join(f"{k}:{v}" for k, v in sorted(statuses.items()))
    for name, _ in METRICS:
        found = group.stats.get(name)
        for stat in STAT_FIELDS:
            row[f"{name}_{stat}"] = _num(getattr(found, stat)) if found else ""
    return row


def summary_csv_text(runs: Sequence[RunResult]) -> str:
    """summary.csv: per-configuration statistics first, then every run (report order)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, lineterminator="\n", restval="")
    writer.writeheader()
    for group in config_groups(runs):
        writer.writerow(config_row(group))
    for run in sorted(runs, key=RunResult.sort_key):
        found = run_convergence(run)
        late = {
            "late_fall_pp": _num(found.fall_pp) if found else "",
            "still_falling": int(found.still_falling) if found else "",
        }
        row = {"row": "run", "config": _num(run.config), "seed": _num(run.seed)}
        writer.writerow({**row, **csv_row(run), **late})
    return buffer.getvalue()


def write_summary_csv(runs: Sequence[RunResult], path: Path) -> Path:
    """Write summary.csv atomically."""
    return atomic_write(Path(path), summary_csv_text(runs).encode("utf-8"))
