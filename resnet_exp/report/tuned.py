"""An Optuna search's section of report.md (``tuned.json``): best parameters, lr search curves, the
verdicts at the tuned and the shared lr (pooled: lrs differ by design), and what tuning changed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from resnet_exp.report.aggregate import RunResult
from resnet_exp.report.claims import NOT_REPRODUCED, REPRODUCED
from resnet_exp.report.plots import _save
from resnet_exp.report.study import decide
from resnet_exp.report.verdict import fmt_effect, headline
from resnet_exp.tracking.record import read_tuned

TUNED_PNG = "tuned_search.png"
LR = "optimizer.lr"
PRUNED = "PRUNED"  # a trial's state in tuned.json (Optuna's TrialState name, the sweeper's)


def survival(tuned: Sequence[RunResult], shared: Sequence[RunResult]) -> str:
    """Whether deeper plain nets still train worse at each configuration's own best lr."""
    at_tuned, at_shared = decide(tuned), decide(shared)
    tuned_fx, shared_fx = (
        fmt_effect(v.plain.effect) if v.plain else "not measured" for v in (at_tuned, at_shared)
    )
    found, before = (
        v.plain_claim.outcome if v.plain_claim else None for v in (at_tuned, at_shared)
    )
    title = {
        (True, REPRODUCED): "The degradation survives tuning",
        (True, NOT_REPRODUCED): "The degradation does not survive tuning",
        (False, REPRODUCED): "The degradation shows only at the tuned lrs",
        (False, NOT_REPRODUCED): "No degradation, at the shared lr or at the tuned lrs",
    }.get((before == REPRODUCED, found), "Whether the degradation survives tuning is not settled")
    numbers = f"deeper plain nets: {tuned_fx} at the tuned lrs, {shared_fx} at the shared lr"
    return f"**{title}** ({numbers})."


def plot_search(rows: list[tuple[bool | None, Any, dict]], path: Path) -> Path:
    """Validation error against lr: a panel per family, a line per depth."""
    fig = Figure(figsize=(9, 3.6))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, residual in zip(axes, (False, True)):
        ax.set_title("residual" if residual else "plain")
        for res, depth, study in rows:
            points = sorted(
                (t["params"][LR], t["value"]) for t in completed(study) if LR in t["params"]
            )
            if res is residual and points:
                ax.plot(*zip(*points), marker="o", label=f"depth {depth}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    axes[0].set_ylabel("objective (default: best val err, %)")
    return _save(fig, path)


def completed(study: dict) -> list[dict]:
    """A study's trials that ran to their end (a pruned trial's value is an early epoch's)."""
    return [t for t in study["trials"] if t["value"] is not None and t.get("state") != PRUNED]


def tuned_lines(runs: Sequence[RunResult], sweep_dir: Path) -> list[str]:
    """Each study's best parameters, then (with follow-ups) the verdicts; [] unless a search."""
    studies = (read_tuned(sweep_dir) or {}).get("studies")
    if not studies:
        return []
    by_dir = {Path(r.name).name: r for r in runs}
    tuned, shared, rows = [], [], []
    lines = ["| study | best parameters | its objective | trials |", "|---|---|---|---|"]
    for study in studies:
        mine, base = ([by_dir[n] for n in map(lambda j: Path(j).name, study[k]) if n in by_dir]
                      for k in ("tuned_jobs", "baseline_jobs"))  # fmt: skip
        tuned, shared = tuned + mine, shared + base
        run = (mine or base or [None])[0]
        label = f"{run.block}-{run.depth}" if run else study["study"]
        rows.append((run.residual if run else None, run.depth if run else None, study))
        done, pruned = completed(study), sum(t.get("state") == PRUNED for t in study["trials"])
        best = min(done, key=lambda t: t["value"]) if done else {"params": {}, "value": None}
        value = "-" if best["value"] is None else f"{best['value']:.4g}"
        params = " ".join(f"{k}={v}" for k, v in best["params"].items()) or "-"
        count = f"{len(done)}" + (f" (+{pruned} pruned)" if pruned else "")
        lines.append(f"| {label} | {params} | {value} | {count} |")
    lines.append("")
    if any(LR in t["params"] for study in studies for t in study["trials"]):
        plot_search(rows, Path(sweep_dir) / TUNED_PNG)
        lines += [f"![validation error against lr]({TUNED_PNG})", ""]
    if tuned:  # replicates at the best parameters (a search alone has no verdict of its own)
        lines.append(f"- At the tuned lrs ({len(tuned)} runs): {headline(tuned, pooled=True)}")
    if tuned and shared:
        lines.append(f"- At the shared lr ({len(shared)} runs): {headline(shared, pooled=True)}")
        lines += ["", survival(tuned, shared), ""]
    return lines


def tuned_section(runs: Sequence[RunResult], sweep_dir: Path) -> list[str]:
    lines = tuned_lines(runs, sweep_dir)  # [] for any other sweep
    note = "The Verdict below takes each value the search tried as a setup of its own."
    return ["## Tuned by Optuna", "", *lines, "", note, ""] if lines else []
