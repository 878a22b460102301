"""`report.md`: the sweep's table, a verdict computed from its numbers, and the figures.

The verdict is the point of a degradation sweep, so it is generated from the final training errors
(no canned text): per family, does training error rise, fall or stay flat from the shallowest to the
deepest completed depth, and at each depth, does the residual net train better than its plain twin.
It hedges when fewer than two depths of a family completed. The output is deterministic (no
timestamps), so a rebuild from the same files gives the same bytes.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from resnet_exp.atomic import atomic_write
from resnet_exp.report.aggregate import RunResult, datasets
from resnet_exp.report.claims import (
    INCONCLUSIVE,
    MARGIN_PP,
    NOT_REPRODUCED,
    REPRODUCED,
    UNKNOWN,
    Claim,
    rises,
    seed_list,
)
from resnet_exp.report.convergence import LATE_FRACTION, STILL_FALLING_PP
from resnet_exp.report.environment import environment_lines
from resnet_exp.report.figures import FIGURES
from resnet_exp.report.paper import TABLE6_CIFAR10_RESNET
from resnet_exp.report.plots import run_labels
from resnet_exp.report.stats import Effect, Spread, spread
from resnet_exp.report.study import (
    config_groups,
    decide,
    family_effect,
    run_convergence,
    still_falling,
    train_errors_by_depth,
)
from resnet_exp.tracking.names import config_label, config_overrides, shared_overrides
from resnet_exp.tracking.record import REPORT_MD, SUMMARY_CSV, sweep_id

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


def fmt_effect(effect: Effect) -> str:
    """'+27.42 pp (95% CI +20.51 to +34.33 pp)', or without the interval where one seed was run."""
    text = _fmt_pp(effect.estimate)
    if effect.known:
        text += f" (95% CI {effect.ci_low:+.2f} to {effect.ci_high:+.2f} pp)"
    return text


def fmt_share(share: Effect) -> str:
    """'96.1% (95% CI 88.0% to 104.3%)'; without a bounded interval, says why."""
    if share.known:
        return f"{share.estimate:.1%} (95% CI {share.ci_low:.1%} to {share.ci_high:.1%})"
    return f"{share.estimate:.1%} (no bounded interval: the plain penalty is too uncertain)"


def _settle(claim: Claim) -> str:
    if claim.seeds is None:
        return "no realistic number of seeds would settle it at this spread"
    return (
        f"about {claim.seeds} seeds per configuration would settle it "
        f"(`{seed_list(claim.seeds)}`, a power estimate from the observed spread)"
    )


_PROVISIONAL = "seed noise unknown with one seed per depth, so this is provisional"
_RISES = {  # the plain family's claim: it degrades
    REPRODUCED: "degrades with depth (the interval lies above zero)",
    NOT_REPRODUCED: f"no degradation beyond {MARGIN_PP:g} pp (the interval lies below "
    f"+{MARGIN_PP:g} pp)",
    INCONCLUSIVE: f"inconclusive (the interval includes zero and +{MARGIN_PP:g} pp)",
    UNKNOWN: _PROVISIONAL,
}
_BELOW = {  # the residual family's claim: it does not degrade as the plain family does
    REPRODUCED: f"no degradation beyond {MARGIN_PP:g} pp (the interval lies below "
    f"+{MARGIN_PP:g} pp)",
    NOT_REPRODUCED: "degrades like the plain family (the two depth effects differ by less than "
    f"{MARGIN_PP:g} pp)",
    INCONCLUSIVE: f"inconclusive (the interval includes +{MARGIN_PP:g} pp, and the gap to the "
    f"plain family's effect includes {MARGIN_PP:g} pp)",
    UNKNOWN: _PROVISIONAL,
}
_BELOW_PLAIN = (
    f"rises less than the plain family by more than {MARGIN_PP:g} pp (the interval of the "
    f"difference lies above +{MARGIN_PP:g} pp)"
)


def _left_out(runs: Sequence[RunResult], residual: bool) -> str:
    labels = dict(zip(map(id, runs), run_labels(runs)))
    out = [
        f"{labels[id(r)]} {r.status}"
        for r in runs
        if bool(r.residual) == residual and not (r.ok and r.final_train_err is not None)
    ]
    return f" Not counted: {', '.join(out)}." if out else ""


def _counts(counts: Sequence[int]) -> str:
    if len(set(counts)) == 1:
        return f"n = {counts[0]} seed{'s' if counts[0] != 1 else ''} per depth"
    return "n = " + "/".join(map(str, counts)) + " seeds"


def family_verdict(runs: Sequence[RunResult], residual: bool) -> str:
    """One sentence for one family, with its depth effect, 95% interval and outcome."""
    name = "residual" if residual else "plain"
    left_out = _left_out(runs, residual)
    found = family_effect(runs, residual)
    if found is None:
        by_depth = train_errors_by_depth(runs, residual)
        if not by_depth:
            return f"**{name}**: no completed runs — no verdict.{left_out}"
        ((depth, values),) = by_depth.items()
        return (
            f"**{name}**: only depth {depth} completed (mean final training error "
            f"{fmt_pct(sum(values) / len(values))}, n = {len(values)}) — at least two depths are "
            f"needed to judge how depth affects training error; no verdict.{left_out}"
        )
    chain = (
        f"depth {' → '.join(map(str, found.depths))}: "
        f"{' → '.join(fmt_pct(m) for m in found.means)} mean final training error "
        f"({_counts(found.counts)})"
    )
    verdict = decide(runs)
    claim = verdict.residual_claim if residual else verdict.plain_claim
    if claim is None:
        claim = rises(found.parts)  # a family alone, or provisional: its own interval
    outcome = (_BELOW if residual else _RISES)[claim.outcome]
    if claim.basis == "below plain":
        outcome = _BELOW_PLAIN
    if claim.outcome == INCONCLUSIVE:
        outcome += f"; {_settle(claim)}"
    return f"**{name}**: {chain}; depth effect {fmt_effect(found.effect)} — {outcome}.{left_out}"


def _still_falling_note(runs: Sequence[RunResult]) -> str:
    falling = [label for run, label in zip(runs, run_labels(runs)) if run.ok and still_falling(run)]
    if not falling:
        return ""
    return (
        f" This rests on {len(falling)} run{'s' if len(falling) != 1 else ''} whose training "
        f"error was still falling at the end ({', '.join(falling)}): longer training may move "
        "these numbers."
    )


def _plain_not_shown(plain: Claim) -> str:
    if plain.outcome == NOT_REPRODUCED:
        return (
            "**Degradation not reproduced**: the interval rules out a plain depth effect larger "
            f"than +{MARGIN_PP:g} pp: deeper plain nets changed final training error by "
            f"{fmt_effect(plain.effect)} (too few steps, too shallow, or too easy a dataset can "
            "hide it)."
        )
    return (
        "**Inconclusive**: deeper plain nets changed final training error by "
        f"{fmt_effect(plain.effect)}, an interval that neither shows degradation nor rules out "
        f"one larger than +{MARGIN_PP:g} pp; {_settle(plain)}."
    )


def _residual_clause(resid: Claim, gap: Claim) -> str:
    effect = fmt_effect(resid.effect)
    if resid.basis == "flat":
        return (
            f"deeper residual nets do not degrade: {effect}, an interval below the "
            f"+{MARGIN_PP:g} pp margin"
        )
    if resid.basis == "below plain":
        return (
            f"deeper residual nets change by {effect}, less than the plain nets' rise by "
            f"{fmt_effect(gap.effect)}, an interval above the {MARGIN_PP:g} pp margin"
        )
    if resid.outcome == NOT_REPRODUCED:
        return f"deeper residual nets degrade alike, by {effect}"
    return (
        f"whether deeper residual nets degrade is inconclusive: {effect}, the gap to the plain "
        f"nets' rise {fmt_effect(gap.effect)}; {_settle(resid)}"
    )


_MOST = {
    REPRODUCED: "more than half: the interval lies above 50%",
    NOT_REPRODUCED: "less than half: the interval lies below 50%",
    INCONCLUSIVE: "the interval includes 50%, or has no bound",
}
_TITLE = {
    REPRODUCED: "Degradation reproduced: deeper plain nets train worse, residual nets do not",
    NOT_REPRODUCED: "Degradation in both families",
    INCONCLUSIVE: "Plain degradation reproduced; the residual family is inconclusive",
}


def headline(runs: Sequence[RunResult]) -> str:
    """The one-line answer, each of its three claims decided by its interval."""
    found = decide(runs)
    plain, resid = found.plain, found.residual
    if plain is None:
        return "**Inconclusive**: fewer than two depths of plain nets completed."
    if found.plain_claim is None:
        r = f"; deeper residual nets by {fmt_effect(resid.effect)}" if resid else ""
        return (
            "**Provisional (one seed per configuration, so the seed noise is unknown)**: deeper "
            f"plain nets changed final training error by {fmt_effect(plain.effect)}{r}. Run "
            "several seeds (e.g. seed=0,1,2) for a verdict."
        )
    falling = _still_falling_note(runs)
    if found.plain_claim.outcome != REPRODUCED:
        return _plain_not_shown(found.plain_claim) + falling
    if found.residual_claim is None or found.avoided is None or found.share is None:
        return (
            f"**Degradation reproduced for plain nets** ({fmt_effect(plain.effect)}); fewer than "
            "two residual depths completed, so the residual fix is not yet shown." + falling
        )
    title = _TITLE[found.residual_claim.outcome]
    saved = (
        f"The shortcuts avoid {fmt_share(found.share)} of the plain penalty ({_MOST[found.most]})."
    )
    return (
        f"**{title}**: deeper plain nets train worse by {fmt_effect(plain.effect)}; "
        f"{_residual_clause(found.residual_claim, found.avoided)}. {saved}{falling}"
    )


def verdict_section(runs: Sequence[RunResult]) -> list[str]:
    """Headline, how it is decided, and one line per family, for runs of one dataset."""
    epochs = sorted({r.epochs for r in runs if r.ok})
    basis = (
        f"Based on the final training error of completed runs (after {', '.join(map(str, epochs))} "
        f"epoch{'s' if epochs != [1] else ''}). A family's depth effect is the change from its "
        "shallowest to its deepest depth along the least-squares line through every depth's mean, "
        "with a Welch-Satterthwaite 95% confidence interval over seeds. Each claim is "
        "*reproduced* when its interval shows it, *not reproduced* only when the interval rules "
        f"it out beyond a margin of {MARGIN_PP:g} pp, and *inconclusive* otherwise, with the "
        "seeds a power estimate (80%) says would settle it. The share of the plain penalty "
        "avoided has Fieller's interval. A run is *still falling* when its training error fell "
        f"by more than {STILL_FALLING_PP:g} pp (and twice its noise) over its last "
        f"{LATE_FRACTION:.0%} of steps."
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
    "late fall",
    "best val err",
    "test err @ best val",
    "epochs",
    "wall time",
    "status",
)


def fmt_late_fall(run: RunResult) -> str:
    """How much the training error still fell over the run's last steps; '–' without step rows."""
    found = run_convergence(run)
    if found is None:
        return "–"
    return f"{found.fall_pp:+.1f} pp" + (" still falling" if found.still_falling else "")


def table_rows(runs: Sequence[RunResult], full_errors: bool = False) -> list[list[str]]:
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
            _fmt_epochs(run),
            fmt_duration(run.wall_time_s),
            status_cell(run, 10_000 if full_errors else _MAX_CELL_ERROR),
        ]
        for label, run in zip(labels, ordered)
    ]


def markdown_table(runs: Sequence[RunResult]) -> list[str]:
    """The runs as a GitHub-flavoured markdown table."""
    align = ("---", "---:", "---", "---:", ":---:", "---:", "---:", "---:", "---:", "---:", "---:")
    align += ("---:",)
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
    lines = [*_intro_lines(runs, sweep_dir), "## Verdict", "", *_verdict_lines(runs)]
    lines += ["## Statistics per configuration (over seeds)", "", *stats_table(runs), ""]
    lines += ["## Table 6 view", "", *table6_section(runs), ""]
    lines += ["## Runs", "", *markdown_table(runs), "", *_duplicates_line(runs)]
    problems = problems_section(runs)
    if problems:
        lines += ["### Failed, diverged and incomplete runs", "", *problems, ""]
    lines += [*figures_section(runs), "## Environment", "", *environment_lines(runs), ""]
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def _intro_lines(runs: Sequence[RunResult], sweep_dir: Path) -> list[str]:
    """Title, where the sweep is, what it ran, and the question it answers."""
    names = datasets(runs)
    return [
        f"# Sweep report: {sweep_id(sweep_dir)}",
        "",
        f"- Sweep directory: `{sweep_dir.resolve()}`",
        f"- Dataset: {', '.join(names) if names else 'unknown'}",
        f"- Runs: {len(runs)} ({_status_counts(runs)})",
        "",
        "Question (He et al. 2015, Fig. 6): do deeper *plain* nets reach higher **training** error "
        "(the degradation problem), while residual nets of the same depth do not?",
        "",
    ]


def _verdict_lines(runs: Sequence[RunResult]) -> list[str]:
    """The verdict, one subsection per dataset when the sweep mixes datasets."""
    names = datasets(runs)
    if len(names) <= 1:
        return [*verdict_section(runs), ""]
    lines: list[str] = []
    for name in names:
        lines += [f"### {name}", "", *verdict_section([r for r in runs if r.dataset == name]), ""]
    others = [r for r in runs if r.dataset not in names]
    if others:
        lines += ["### unknown dataset", "", *verdict_section(others), ""]
    return lines


def figures_section(runs: Sequence[RunResult]) -> list[str]:
    """Each figure of `FIGURES` with its caption, and where the numbers are."""
    lines = ["## Figures", ""]
    for figure in FIGURES:
        lines += [f"![{figure.alt}]({figure.file})", "", figure.caption(runs), ""]
    return [*lines, f"Numbers per configuration and per run: [{SUMMARY_CSV}]({SUMMARY_CSV}).", ""]


def _ms(found: Spread | None) -> str:
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
        train = group.stats.get("final_train_err")
        val = group.stats.get("best_val_err")
        test = group.stats.get("test_err_at_best_val")
        n = f"{len(group.completed)}/{len(group.runs)}"
        span = f"{train.min:.2f} – {train.max:.2f}" if train else "–"
        label = _cell(labels[group.config])
        lines.append(
            f"| {label} | {n} | {_ms(train)} | {span} | {_ci(train)} | {_ms(val)} "
            f"| {_ci(val)} | {_ms(test)} | {_ci(test)} |"
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
