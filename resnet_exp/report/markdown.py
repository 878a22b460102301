"""`report.md`: the sweep's table, a verdict computed from its numbers, and the two figures.

The verdict is the point of a degradation sweep, so it is generated from the final training errors
(no canned text): per family, does training error rise, fall or stay flat from the shallowest to the
deepest completed depth, and at each depth, does the residual net train better than its plain twin.
It hedges when fewer than two depths of a family completed. The output is deterministic (no
timestamps), so a rebuild from the same files gives the same bytes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from resnet_exp.atomic import atomic_write
from resnet_exp.report.aggregate import RunResult, datasets, sweep_id
from resnet_exp.report.plots import run_labels

REPORT = "report.md"
DEGRADATION_PNG = "degradation.png"
GRADIENTS_PNG = "gradients.png"

# A change of training error with depth counts only when larger than both of these: an absolute
# floor in percentage points and a share of the shallower net's error (noise grows with the error
# itself).
MIN_CHANGE_PP = 0.25
MIN_CHANGE_REL = 0.05
_MAX_CELL_ERROR = 120


# -------------------------------------------------------------------------------------------------
# Number formatting


def fmt_pct(value: float | None) -> str:
    """8.1234 -> '8.12%'; missing -> '–'."""
    if value is None:
        return "–"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.2f}%"


def _fmt_pp(delta: float) -> str:
    return f"{delta:+.2f} pp"


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


def _fmt_epochs(run: RunResult) -> str:
    return f"{run.epochs}/{run.epochs_planned}" if run.epochs_planned else str(run.epochs)


def _cell(text: str) -> str:
    """Make text safe inside one markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def status_cell(run: RunResult, limit: int = _MAX_CELL_ERROR) -> str:
    """'completed', or the status in bold capitals with the (shortened) error message."""
    if run.status == "completed":
        return "completed"
    text = f"**{run.status.upper()}**"
    if run.error:
        message = " ".join(run.error.split())
        if len(message) > limit:
            message = message[: limit - 1] + "…"
        text += f": {message}"
    return _cell(text)


# -------------------------------------------------------------------------------------------------
# Verdict


@dataclass
class Trend:
    """Final training error against depth for one family (completed runs, mean per depth)."""

    family: str  # "plain" | "residual"
    depths: list[int]
    errors: list[float]
    runs_per_depth: list[int]
    direction: str  # "rises" | "falls" | "flat" | "unknown"
    monotonic: bool
    threshold: float  # the smallest change that counted


def _threshold(reference: float) -> float:
    """The smallest change of error (pp) that counts, relative to a reference error."""
    return max(MIN_CHANGE_PP, MIN_CHANGE_REL * abs(reference))


def _per_depth(runs: Iterable[RunResult]) -> dict[int, list[float]]:
    by_depth: dict[int, list[float]] = {}
    for run in runs:
        err = run.final_train_err
        if run.ok and run.depth is not None and err is not None and math.isfinite(err):
            by_depth.setdefault(run.depth, []).append(err)
    return dict(sorted(by_depth.items()))


def family_trend(runs: Sequence[RunResult], residual: bool) -> Trend:
    """Classify how final training error moves from the shallowest to the deepest completed depth.

    'rises'/'falls' when the end-to-end change exceeds max(MIN_CHANGE_PP, MIN_CHANGE_REL x the
    shallowest error), else 'flat'; `monotonic`: no intermediate step goes against it by more.
    """
    family = "residual" if residual else "plain"
    by_depth = _per_depth(r for r in runs if bool(r.residual) == residual)
    depths = list(by_depth)
    errors = [sum(v) / len(v) for v in by_depth.values()]
    counts = [len(v) for v in by_depth.values()]
    if len(depths) < 2:
        return Trend(family, depths, errors, counts, "unknown", False, math.nan)
    threshold = _threshold(errors[0])
    delta = errors[-1] - errors[0]
    if delta > threshold:
        direction = "rises"
    elif delta < -threshold:
        direction = "falls"
    else:
        direction = "flat"
    steps = [b - a for a, b in zip(errors, errors[1:])]
    if direction == "rises":
        monotonic = all(s >= -threshold for s in steps)
    elif direction == "falls":
        monotonic = all(s <= threshold for s in steps)
    else:
        monotonic = all(abs(e - errors[0]) <= threshold for e in errors)
    return Trend(family, depths, errors, counts, direction, monotonic, threshold)


def _left_out(runs: Sequence[RunResult], residual: bool) -> str:
    labels = dict(zip(map(id, runs), run_labels(runs)))
    out = [
        f"{labels[id(r)]} {r.status}"
        for r in runs
        if bool(r.residual) == residual and not (r.ok and r.final_train_err is not None)
    ]
    return f" Not counted: {', '.join(out)}." if out else ""


def family_verdict(runs: Sequence[RunResult], residual: bool) -> str:
    """One sentence for one family, e.g. 'plain: training error rises with depth: 20 → 56: 8.10% →
    12.30% (+4.20 pp) — degradation present.'"""
    trend = family_trend(runs, residual)
    name = trend.family
    left_out = _left_out(runs, residual)
    if not trend.depths:
        return f"**{name}**: no completed runs — no verdict.{left_out}"
    if len(trend.depths) == 1:
        return (
            f"**{name}**: only depth {trend.depths[0]} completed (final training error "
            f"{fmt_pct(trend.errors[0])}) — at least two depths are needed to judge how depth "
            f"affects training error; no verdict.{left_out}"
        )
    chain = (
        f"{' → '.join(map(str, trend.depths))}: {' → '.join(fmt_pct(e) for e in trend.errors)} "
        f"({_fmt_pp(trend.errors[-1] - trend.errors[0])})"
    )
    steady = "" if trend.monotonic else " overall (not at every step)"
    flat_band = f"within ±{trend.threshold:.2f} pp"
    if trend.direction == "rises":
        what = f"training error rises with depth{steady}: {chain}"
        meaning = "degradation present"
        if trend.family == "residual":
            meaning += " even with shortcuts"
    elif trend.direction == "falls":
        what = f"training error falls with depth{steady}: {chain}"
        meaning = "no degradation (deeper trains better)"
    else:
        what = f"training error stays flat with depth ({flat_band}): {chain}"
        meaning = "no degradation"
    if trend.family == "plain" and trend.direction != "rises":
        meaning += " at these depths"
    averaged = (
        " Errors are means over the runs at each depth." if max(trend.runs_per_depth) > 1 else ""
    )
    return f"**{name}**: {what} — {meaning}.{averaged}{left_out}"


def headline(runs: Sequence[RunResult]) -> str:
    """The one-line answer: was the degradation problem (and its residual fix) reproduced?"""
    plain, resid = family_trend(runs, False), family_trend(runs, True)
    if plain.direction == "unknown":
        return "**Inconclusive**: fewer than two depths of plain nets completed."
    if plain.direction != "rises":
        return (
            "**Degradation not reproduced**: deeper plain nets did not reach higher training error "
            "(too few epochs, too shallow, or too easy a dataset can hide it)."
        )
    if resid.direction == "unknown":
        return (
            "**Degradation reproduced for plain nets**; fewer than two residual depths completed, "
            "so the residual fix is not yet shown."
        )
    if resid.direction == "rises":
        return "**Degradation in both families**: residual nets also got worse with depth."
    return "**Degradation reproduced**: deeper plain nets train worse, deeper residual nets do not."


@dataclass
class Pair:
    """Plain and residual results at one depth (means over completed runs)."""

    depth: int
    plain_train: float
    residual_train: float
    plain_test: float | None
    residual_test: float | None


def depth_pairs(runs: Sequence[RunResult]) -> list[Pair]:
    """Depths where both a plain and a residual run completed."""

    def means(residual: bool, attr: str) -> dict[int, float]:
        values: dict[int, list[float]] = {}
        for run in runs:
            value = getattr(run, attr)
            if (
                bool(run.residual) == residual
                and run.ok
                and run.depth is not None
                and value is not None
                and math.isfinite(value)
            ):
                values.setdefault(run.depth, []).append(value)
        return {d: sum(v) / len(v) for d, v in values.items()}

    plain_train, resid_train = means(False, "final_train_err"), means(True, "final_train_err")
    plain_test, resid_test = (
        means(False, "test_err_at_best_val"),
        means(True, "test_err_at_best_val"),
    )
    return [
        Pair(d, plain_train[d], resid_train[d], plain_test.get(d), resid_test.get(d))
        for d in sorted(set(plain_train) & set(resid_train))
    ]


def comparison_section(runs: Sequence[RunResult]) -> list[str]:
    """Residual vs plain at each shared depth: a table and a sentence about the gap."""
    pairs = depth_pairs(runs)
    if not pairs:
        return ["No depth has both a completed plain and a completed residual run to compare."]
    lines = [
        "| depth | plain train err | ResNet train err | ResNet − plain | plain test err "
        "@ best val | ResNet test err @ best val | lower train err |",
        "|---:|---:|---:|---:|---:|---:|:---|",
    ]
    better = 0
    for p in pairs:
        gap = p.residual_train - p.plain_train
        band = _threshold(p.plain_train)
        if gap < -band:
            winner, better = "ResNet", better + 1
        elif gap > band:
            winner = "plain"
        else:
            winner = "tie"
        lines.append(
            f"| {p.depth} | {fmt_pct(p.plain_train)} | {fmt_pct(p.residual_train)} | "
            f"{_fmt_pp(gap)} | {fmt_pct(p.plain_test)} | {fmt_pct(p.residual_test)} | {winner} |"
        )
    sentence = (
        f"The residual net reaches lower final training error than its plain twin at {better} of "
        f"{len(pairs)} depth{'s' if len(pairs) != 1 else ''}"
    )
    if len(pairs) >= 2:
        first = pairs[0].residual_train - pairs[0].plain_train
        last = pairs[-1].residual_train - pairs[-1].plain_train
        band = _threshold(pairs[0].plain_train)
        if last < first - band:
            trend = "widens in the residual net's favour"
        elif last > first + band:
            trend = "narrows (or turns against the residual net)"
        else:
            trend = "stays about the same"
        sentence += (
            f"; the gap {trend} with depth ({_fmt_pp(first)} at {pairs[0].depth} → "
            f"{_fmt_pp(last)} at {pairs[-1].depth})"
        )
    lines += ["", sentence + "."]
    return lines


def verdict_section(runs: Sequence[RunResult]) -> list[str]:
    """Headline, one line per family and the per-depth comparison, for runs of one dataset."""
    epochs = sorted({r.epochs for r in runs if r.ok})
    basis = (
        f"Based on the final training error of completed runs (after {', '.join(map(str, epochs))} "
        f"epoch{'s' if epochs != [1] else ''})."
        if epochs
        else "No run completed."
    )
    return [
        headline(runs),
        "",
        basis,
        "",
        f"- {family_verdict(runs, residual=False)}",
        f"- {family_verdict(runs, residual=True)}",
        "",
        "Residual vs plain at each depth:",
        "",
        *comparison_section(runs),
    ]


# -------------------------------------------------------------------------------------------------
# Tables and the document


TABLE_HEADER = (
    "run",
    "dir",
    "block",
    "depth",
    "shortcut",
    "params",
    "FLOPs",
    "final train err",
    "best val err",
    "test err @ best val",
    "epochs",
    "wall time",
    "status",
)


def table_rows(runs: Sequence[RunResult], full_errors: bool = False) -> list[list[str]]:
    """Formatted cells per run, in report order (`TABLE_HEADER` columns)."""
    ordered = sorted(runs, key=RunResult.sort_key)
    labels = run_labels(ordered)
    return [
        [
            label,
            run.name,
            run.block or "?",
            "?" if run.depth is None else str(run.depth),
            run.shortcut or "–",
            fmt_count(run.params),
            fmt_count(run.flops),
            fmt_pct(run.final_train_err),
            fmt_pct(run.best_val_err),
            fmt_pct(run.test_err_at_best_val),
            _fmt_epochs(run),
            fmt_duration(run.wall_time_s),
            status_cell(run, 10_000 if full_errors else _MAX_CELL_ERROR),
        ]
        for label, run in zip(labels, ordered)
    ]


def markdown_table(runs: Sequence[RunResult]) -> list[str]:
    """The runs as a GitHub-flavoured markdown table."""
    align = ("---", "---:", "---", "---:", ":---:", "---:", "---:", "---:", "---:", "---:", "---:")
    align += ("---:", "---")
    lines = [
        "| " + " | ".join(TABLE_HEADER) + " |",
        "|" + "|".join(align) + "|",
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table_rows(runs)]
    return lines


def text_table(runs: Sequence[RunResult]) -> str:
    """The same table as aligned plain text, for the terminal."""
    rows = [list(TABLE_HEADER)] + [
        [c.replace("**", "") for c in row] for row in table_rows(runs, full_errors=False)
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_HEADER) - 1)]
    out = []
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths)]
        out.append("  ".join(cells + [row[-1]]).rstrip())
    return "\n".join(out)


def _status_counts(runs: Sequence[RunResult]) -> str:
    counts = Counter(r.status for r in runs)
    order = ["completed", "incomplete", "diverged", "failed"]
    keys = order + sorted(k for k in counts if k not in order)
    return ", ".join(f"{counts[k]} {k}" for k in keys if counts[k])


def problems_section(runs: Sequence[RunResult]) -> list[str]:
    """Full error messages of failed/diverged/incomplete runs, and partly unreadable files."""
    ordered = sorted(runs, key=RunResult.sort_key)
    lines: list[str] = []
    for label, run in zip(run_labels(ordered), ordered):
        notes = []
        if run.status != "completed":
            notes.append(f"**{run.status.upper()}**" + (":" if run.error else ""))
        if run.skipped_lines:
            notes.append(
                f"metrics.jsonl had {run.skipped_lines} unreadable line"
                f"{'s' if run.skipped_lines != 1 else ''} (skipped; a torn write from a killed job)"
            )
        if not notes:
            continue
        lines.append(f"- {label} (dir `{run.name}`, job `{run.job}`): " + "; ".join(notes))
        if run.status != "completed" and run.error:
            body = run.error.rstrip().replace("```", "'''")
            lines += ["", "  ```text", *[f"  {line}" for line in body.splitlines()], "  ```", ""]
    return lines


def render_report(runs: Sequence[RunResult], sweep_dir: Path) -> str:
    """The text of report.md."""
    runs = list(runs)
    sweep_dir = Path(sweep_dir)
    names = datasets(runs)
    lines = [
        f"# Sweep report: {sweep_id(sweep_dir)}",
        "",
        f"- Sweep directory: `{sweep_dir.resolve()}`",
        f"- Dataset: {', '.join(names) if names else 'unknown'}",
        f"- Runs: {len(runs)} ({_status_counts(runs)})",
        "",
        "Question (He et al. 2015, Fig. 6): do deeper *plain* nets reach higher **training** error "
        "(the degradation problem), while residual nets of the same depth do not?",
        "",
        "## Verdict",
        "",
    ]
    if len(names) > 1:
        for name in names:
            lines += [
                f"### {name}",
                "",
                *verdict_section([r for r in runs if r.dataset == name]),
                "",
            ]
        others = [r for r in runs if r.dataset not in names]
        if others:
            lines += ["### unknown dataset", "", *verdict_section(others), ""]
    else:
        lines += [*verdict_section(runs), ""]
    lines += ["## Runs", "", *markdown_table(runs), ""]
    problems = problems_section(runs)
    if problems:
        lines += ["### Failed, diverged and incomplete runs", "", *problems, ""]
    lines += [
        "## Figures",
        "",
        f"![Training and test error against epoch, plain vs residual]({DEGRADATION_PNG})",
        "",
        "Training error dashed, test error solid, one colour per depth in both panels (as in the "
        "paper's Fig. 6).",
        "",
        f"![Per-stage gradient norms, plain vs residual]({GRADIENTS_PNG})",
        "",
        "Gradient norm of each stage (stem → head, log scale) in the first epoch (and the last): "
        "vanishing gradients show as early stages of deep plain nets getting far less gradient.",
        "",
        "Numbers per run: [summary.csv](summary.csv).",
        "",
    ]
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def write_report(runs: Sequence[RunResult], sweep_dir: Path) -> Path:
    """Write `<sweep_dir>/report.md` atomically and return its path."""
    path = Path(sweep_dir) / REPORT
    return atomic_write(path, render_report(runs, sweep_dir).encode("utf-8"))
