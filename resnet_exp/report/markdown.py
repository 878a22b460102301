"""`report.md`: the verdict (verdict.py), the statistics, Table 6 and run tables, the figures.

Deterministic (no timestamps): a rebuild from the same files gives the same bytes.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from resnet_exp.atomic import atomic_write
from resnet_exp.report.aggregate import RunResult, datasets, shareable
from resnet_exp.report.environment import environment_lines
from resnet_exp.report.figures import FIGURES
from resnet_exp.report.paper import TABLE6_CIFAR10_RESNET
from resnet_exp.report.plots import run_labels
from resnet_exp.report.stats import Spread, spread
from resnet_exp.report.study import METRICS, config_groups, run_convergence
from resnet_exp.report.tuned import tuned_section
from resnet_exp.report.verdict import fmt_pct, verdict_section
from resnet_exp.tracking.names import config_label, config_overrides, shared_overrides, sweep_id
from resnet_exp.tracking.record import (
    COMPLETED,
    DIVERGED,
    FAILED,
    INCOMPLETE,
    METRICS_JSONL,
    REPORT_MD,
    SUMMARY_CSV,
)

_MAX_CELL_ERROR = 120


def fmt_count(value: float | None) -> str:
    """Paper style: 272474 -> '0.27M', 40_000_000 -> '40.00M', 1.8e9 -> '1.80G'; missing -> '–'."""
    if value is None:
        return "–"
    value = float(value)
    if abs(value) >= 1e9:
        return f"{value / 1e9:.2f}G"
    if abs(value) >= 1e4:
        return f"{value / 1e6:.2f}M"
    return f"{value:.0f}"


def fmt_duration(seconds: float | None) -> str:
    """123.4 -> '2m 03s'."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _cell(text: str) -> str:
    """Make text safe inside one markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def status_cell(run: RunResult, limit: int = _MAX_CELL_ERROR) -> str:
    """COMPLETED, or the status in bold capitals with the (shortened) error message."""
    if run.ok:
        return COMPLETED
    text = f"**{run.status.upper()}**"
    if run.error:
        message = " ".join(run.error.split())
        if len(message) > limit:
            message = message[: limit - 1] + "…"
        text += f": {message}"
    return _cell(text)


# The runs table's columns, each with its markdown alignment.
_COLUMNS = (
    ("run", "---"), ("dir", "---:"), ("block", "---"), ("depth", "---:"), ("shortcut", ":---:"),
    ("params", "---:"), ("FLOPs", "---:"), ("final train err", "---:"), ("late fall", "---:"),
    ("best val err", "---:"), ("test err @ best val", "---:"), ("epochs", "---:"),
    ("wall time", "---:"), ("status", "---"),
)  # fmt: skip
TABLE_HEADER = tuple(name for name, _ in _COLUMNS)


def fmt_late_fall(run: RunResult) -> str:
    """How much the training error still fell over the run's last steps; '–' without step rows."""
    found = run_convergence(run)
    if found is None:
        return "–"
    return f"{found.fall_pp:+.1f} pp" + (" still falling" if found.still_falling else "")


def table_rows(runs: Sequence[RunResult]) -> list[list[str]]:
    """Formatted cells per run, in report order (`TABLE_HEADER` columns)."""
    ordered = sorted(runs, key=RunResult.sort_key)
    labels = run_labels(ordered)
    return [
        [
            label,
            re.sub(r"-[0-9a-f]{8}$", "", run.name),  # the folder's readable part
            run.block or "?",
            "?" if run.depth is None else str(run.depth),
            run.shortcut or "–",
            fmt_count(run.params),
            fmt_count(run.flops),
            fmt_pct(run.final_train_err),
            fmt_late_fall(run),
            fmt_pct(run.best_val_err),
            fmt_pct(run.test_err_at_best_val),
            f"{run.epochs}/{run.epochs_planned}" if run.epochs_planned else str(run.epochs),
            fmt_duration(run.wall_time_s),
            status_cell(run),
        ]
        for label, run in zip(labels, ordered)
    ]


def markdown_table(runs: Sequence[RunResult]) -> list[str]:
    """The runs as a GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "|".join(a for _, a in _COLUMNS) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table_rows(runs)]
    return lines


def _status_counts(runs: Sequence[RunResult]) -> str:
    counts = Counter(r.status for r in runs)
    order = [COMPLETED, INCOMPLETE, DIVERGED, FAILED]
    keys = order + sorted(k for k in counts if k not in order)
    return ", ".join(f"{counts[k]} {k}" for k in keys if counts[k])


def problems_section(runs: Sequence[RunResult]) -> list[str]:
    """Full error messages of failed/diverged/incomplete runs, and partly unreadable files."""
    ordered = sorted(runs, key=RunResult.sort_key)
    lines: list[str] = []
    for label, run in zip(run_labels(ordered), ordered):
        notes = []
        if not run.ok:
            notes.append(f"**{run.status.upper()}**" + (":" if run.error else ""))
        if run.skipped_lines:
            notes.append(
                f"{METRICS_JSONL} had {run.skipped_lines} unreadable line"
                f"{'s' if run.skipped_lines != 1 else ''} (skipped; a torn write from a killed job)"
            )
        if not notes:
            continue
        lines.append(f"- {label} (dir `{run.name}`, job `{run.job}`): " + "; ".join(notes))
        if not run.ok and run.error:
            body = run.error.rstrip().replace("```", "'''")
            lines += ["", "  ```text", *[f"  {line}" for line in body.splitlines()], "  ```", ""]
    return lines


def _duplicates_line(runs: Sequence[RunResult]) -> list[str]:
    """One line naming the folders left out because another folder holds the same job."""
    used = [f"`{r.name}` (not {', '.join(f'`{d}`' for d in r.duplicates)})" for r in runs
            if r.duplicates]  # fmt: skip
    if not used:
        return []
    return [
        "Some folders hold the same job (made before jobs were known by what they compute); "
        "each is counted once, from the completed or else the latest: " + "; ".join(used) + ".",
        "",
    ]


def render_report(runs: Sequence[RunResult], sweep_dir: Path) -> str:
    """The text of report.md."""
    runs = list(runs)
    sweep_dir = Path(sweep_dir)
    lines = [*_intro_lines(runs, sweep_dir), *tuned_section(runs, sweep_dir)]
    lines += ["## Verdict", "", *verdict_section(runs), ""]
    lines += ["## Statistics per configuration (over seeds)", "", *stats_table(runs), ""]
    lines += ["## Table 6 view", "", *table6_section(runs), ""]
    lines += ["## Runs", "", *markdown_table(runs), "", *_duplicates_line(runs)]
    problems = problems_section(runs)
    if problems:
        lines += ["### Failed, diverged and incomplete runs", "", *problems, ""]
    lines += [*figures_section(runs), "## Environment", "", *environment_lines(runs), ""]
    while lines and lines[-1] == "":
        lines.pop()
    return shareable("\n".join(lines) + "\n", sweep_dir)


def _intro_lines(runs: Sequence[RunResult], sweep_dir: Path) -> list[str]:
    """Title, where the sweep is, what it ran, and the question it answers."""
    names = datasets(runs)
    return [
        f"# Sweep report: {sweep_id(sweep_dir)}",
        "",
        f"- Dataset: {', '.join(names) if names else 'unknown'}",
        f"- Runs: {len(runs)} ({_status_counts(runs)})",
        "",
        "Question (He et al. 2015, Fig. 6): do deeper *plain* nets reach higher **training** error "
        "(the degradation problem), while residual nets of the same depth do not?",
        "",
    ]


def figures_section(runs: Sequence[RunResult]) -> list[str]:
    """Each figure of `FIGURES` with its caption, and where the numbers are."""
    lines = ["## Figures", ""]
    for figure in FIGURES:
        lines += [f"![{figure.alt}]({figure.file})", "", figure.caption(runs), ""]
    return [*lines, f"Numbers per configuration and per run: [{SUMMARY_CSV}]({SUMMARY_CSV}).", ""]


def mean_std(found: Spread | None) -> str:
    """'20.87 ± 0.94%' (n ≥ 2), '20.87%' (n = 1), '–' (none)."""
    if found is None:
        return "–"
    if found.n < 2:
        return fmt_pct(found.mean)
    return f"{found.mean:.2f} ± {found.std:.2f}%"


def _ci(found: Spread | None) -> str:
    if found is None or found.n < 2:
        return "–"
    return f"[{found.ci_low:.2f}, {found.ci_high:.2f}]"


def stats_table(runs: Sequence[RunResult]) -> list[str]:
    """One row per configuration: n, mean ± std, min–max and 95% CI of the three errors."""
    lines = [
        "| configuration | n | final train err (mean ± std) | min – max | 95% CI "
        "| best val err | 95% CI | test err @ best val | 95% CI |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    groups = config_groups(runs)
    labels = _distinguishing_labels(groups)
    for group in groups:
        train, val, test = (group.stats.get(name) for name, _ in METRICS)
        n = f"{len(group.completed)}/{len(group.runs)}"
        span = f"{train.min:.2f} – {train.max:.2f}" if train else "–"
        label = _cell(labels[group.config])
        lines.append(
            f"| {label} | {n} | {mean_std(train)} | {span} | {_ci(train)} | {mean_std(val)} "
            f"| {_ci(val)} | {mean_std(test)} | {_ci(test)} |"
        )
    lines += [
        "",
        "n: completed runs / runs. Intervals: Student's t over the completed seeds (none with "
        "n = 1, where the seed noise is unknown).",
    ]
    return lines


def _distinguishing_labels(groups: Sequence) -> dict[str, str]:
    """Each configuration named by the overrides that tell it apart from the others (overrides
    every configuration shares, such as the preset's name, would only make the table wide):
    tracking/names.py's rule, the one W&B's job_type follows."""
    shared = shared_overrides(config_overrides(g.first.overrides) for g in groups)
    return {g.config: config_label(g.first.overrides, shared) for g in groups}


def _best_mean_std(values: Sequence[float]) -> str:
    found = spread(values)
    if found is None:
        return "–"
    if found.n < 2:
        return f"{found.mean:.2f}"
    return f"{found.min:.2f} ({found.mean:.2f}±{found.std:.2f})"


def table6_section(runs: Sequence[RunResult]) -> list[str]:
    """Paper Table 6 layout: per depth, params and test error "best (mean ± std)", plain and
    residual side by side (test error at the best validation epoch, completed runs)."""
    cifar10 = datasets(runs) == ["cifar10"]
    rows: dict[int, dict[bool, list[RunResult]]] = {}
    for run in runs:
        if run.ok and run.depth is not None:
            rows.setdefault(run.depth, {}).setdefault(bool(run.residual), []).append(run)
    header = "| depth | plain params | plain test err % | ResNet params | ResNet test err % |"
    align = "|---:|---:|---:|---:|---:|"
    if cifar10:
        header += " paper ResNet params | paper ResNet test err % |"
        align += "---:|---:|"
    lines = [header, align]
    for depth in sorted(rows):
        cells = [str(depth)]
        for residual in (False, True):
            members = rows[depth].get(residual, [])
            params = next((r.params for r in members if r.params is not None), None)
            errors = [r.test_err_at_best_val for r in members if r.test_err_at_best_val is not None]
            cells += [fmt_count(params), _best_mean_std(errors)]
        if cifar10:
            cells += list(TABLE6_CIFAR10_RESNET.get(depth, ("–", "–")))
        lines.append("| " + " | ".join(cells) + " |")
    note = (
        'Test error at the best validation epoch, "best (mean±std)" over seeds as in the '
        "paper's Table 6."
    )
    if cifar10:
        note += " The paper columns are reference facts from He et al. 2015, Table 6 (CIFAR-10)."
    return [*lines, "", note]


def write_report(runs: Sequence[RunResult], sweep_dir: Path) -> Path:
    """Write `<sweep_dir>/report.md` atomically and return its path."""
    path = Path(sweep_dir) / REPORT_MD
    return atomic_write(path, render_report(runs, sweep_dir).encode("utf-8"))
