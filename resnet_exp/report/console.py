"""What a sweep prints last, and `python -m resnet_exp.report` too: per setup the verdict and a
table of its configurations, then where the report is. Fits 80 columns, also when piped."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Sequence
from pathlib import Path

from resnet_exp.report.aggregate import RunResult, shareable
from resnet_exp.report.markdown import mean_std
from resnet_exp.report.plots import run_labels
from resnet_exp.report.study import config_groups, setups
from resnet_exp.report.tuned import tuned_lines
from resnet_exp.report.verdict import headline
from resnet_exp.tracking.record import REPORT_HTML

TABLE_WIDTH = 80  # every printed table fits it, whatever the terminal
_HEADER = ("configuration", "n", "final train err", "best val err", "test @ best val")
_NUMBERS = ("final_train_err", "best_val_err", "test_err_at_best_val")


def config_table(runs: Sequence[RunResult], width: int = TABLE_WIDTH) -> list[str]:
    """One row per configuration: completed/all runs and the mean ± std of its three errors; the
    first column is cut with an ellipsis where the table would pass `width`."""
    groups = config_groups(runs)
    rows = [list(_HEADER)] + [
        [label, f"{len(g.completed)}/{len(g.runs)}", *(mean_std(g.stats.get(k)) for k in _NUMBERS)]
        for label, g in zip(run_labels([g.first for g in groups]), groups)
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    widths[0] = max(8, min(widths[0], width - sum(widths[1:]) - 2 * (len(widths) - 1)))
    lines = []
    for row in rows:
        cut = row[0] if len(row[0]) <= widths[0] else row[0][: widths[0] - 1] + "…"
        cells = [cut.ljust(widths[0]), row[1].rjust(widths[1])]
        lines.append("  ".join(cells + [c.rjust(w) for c, w in zip(row[2:], widths[2:])]))
    return [*lines, "(over completed seeds, mean ± std; n: completed/runs)"]


def end_lines(runs: Sequence[RunResult], report_md: Path) -> list[str]:
    """The verdict and the table of each setup, then the report's path."""
    wrap = min(shutil.get_terminal_size((TABLE_WIDTH, 24)).columns, 100)
    lines: list[str] = []
    tuned = [t.replace("**", "") for t in tuned_lines(runs, report_md.parent) if t[:2] != "!["]
    if tuned:  # an Optuna search: its best parameters and verdicts, not a verdict per trial
        for line in ["Tuned by Optuna:", *tuned]:
            if line or lines[-1]:  # one blank line between parts
                lines += textwrap.wrap(line, wrap, subsequent_indent="  ") or [""]
        return [*lines, f"report: {shown(report_md)} (and {REPORT_HTML} beside it)"]
    for label, members in setups(runs):
        verdict = headline(members).replace("**", "")
        lines += ["", *textwrap.wrap(f"{f'Setup {label}: ' if label else ''}{verdict}", wrap)]
        lines += ["", *config_table(members)]
    return [*lines, "", f"report: {shown(report_md)} (and {REPORT_HTML} beside it)"]


def shown(path: Path) -> str:
    """A path as printed: relative to the working directory where it lies under it."""
    return shareable(str(path), Path.cwd())
