"""The sweep's figures: degradation (the paper's Fig. 6), gradients and layer responses (Fig. 7).

Drawn on a bare `Figure` with the Agg canvas, never pyplot (no global backend, no display, safe in
a worker process); each function returns the numbers it plotted, so tests check data, not pixels.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator

from resnet_exp.atomic import atomic_path
from resnet_exp.report.aggregate import RunResult, datasets
from resnet_exp.tracking.names import model_label
from resnet_exp.tracking.record import GRAD_NORM, KINDS, STEP_ERR, TEST_ERR, TRAIN_ERR

PANEL_TITLES = {False: "plain networks", True: "residual networks (ResNet)"}  # by model.residual
DPI = 120


def run_labels(runs: Sequence[RunResult]) -> list[str]:
    """Legend labels ("plain-20", "ResNet-56"), qualified only where two runs would share one: by
    the first of block, shortcut option, seed and job directory that tells them apart."""
    labels = [model_label(bool(r.residual), r.depth) for r in runs]
    qualifiers: list[Callable[[RunResult], str]] = [
        lambda r: str(r.block),
        lambda r: f"option {r.shortcut}",
        lambda r: f"seed {r.seed}",
        lambda r: f"job {r.name}",
    ]
    for qualify in qualifiers:
        counts = Counter(labels)
        if all(c == 1 for c in counts.values()):
            break
        groups: dict[str, list[int]] = {}
        for i, label in enumerate(labels):
            if counts[label] > 1:
                groups.setdefault(label, []).append(i)
        for label, members in groups.items():
            if len({qualify(runs[i]) for i in members}) > 1:
                for i in members:
                    labels[i] = f"{label} ({qualify(runs[i])})"
    return labels


def kind_colours(runs: Iterable[RunResult]) -> dict[tuple[bool, int | None], Any]:
    """One colour per family and depth, the same in every figure: plain nets in shades of orange,
    residual nets in shades of blue, darker the deeper."""
    found = {(bool(r.residual), r.depth) for r in runs}
    colours = {}
    for residual, palette in ((False, "Oranges"), (True, "Blues")):
        depths = sorted({d for res, d in found if res == residual}, key=lambda d: d or math.inf)
        span = max(len(depths) - 1, 1)
        for i, depth in enumerate(depths):
            colours[(residual, depth)] = colormaps[palette](0.5 + 0.45 * i / span)
    return colours


def _legend_below(ax: Any) -> None:
    """The legend under the panel, outside the data it would cover (none for an empty panel)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(
            loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8, frameon=False
        )


def _number(value: Any) -> float:
    """A plottable float: missing or non-finite values (diverged runs) become NaN, i.e. a gap."""
    try:
        number = math.nan if isinstance(value, bool) or value is None else float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def _save(fig: Figure, path: Path) -> Path:
    """Render to a temp file beside `path`, then rename: readers never see a half-written PNG."""
    path = Path(path)
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return path


_CENTRED = {"ha": "center", "va": "center", "fontsize": 12}


def _empty_figure(message: str, title: str) -> Figure:
    fig = Figure(figsize=(10, 4))
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, wrap=True, **_CENTRED)
    fig.suptitle(title)
    return fig


def _nothing_plotted(runs: Sequence[RunResult]) -> str:
    if not runs:
        return "no runs in this sweep"
    counts = Counter(r.status for r in runs)
    what = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return f"no finished epochs to plot ({len(runs)} run{'s' if len(runs) != 1 else ''}: {what})"


def _panel_note(ax: Any, text: str) -> None:
    """Grey text in the middle of an empty panel."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, color="0.4", **_CENTRED)


def _replicate_sets(runs: Sequence[RunResult]) -> list[tuple[str, list[RunResult]]]:
    """(label, replicates) per configuration, labelled as run_labels would label one of them."""
    by_config: dict[str, list[RunResult]] = {}
    for run in runs:
        by_config.setdefault(run.configuration or run.config, []).append(run)
    firsts = [members[0] for members in by_config.values()]
    labels = run_labels(firsts) if len({r.config for r in firsts}) == len(firsts) else []
    if len(set(labels)) != len(labels) or any("seed" in label for label in labels):
        labels = [f"{model_label(bool(r.residual), r.depth)} ({r.config})" for r in firsts]
    return list(zip(labels, by_config.values()))


def _curve(runs: Sequence[RunResult], points_of: Callable) -> dict:
    """Mean, min and max over replicates at each x (only x values every replicate has)."""
    series = []
    for run in runs:
        points = {}
        for x, y in ((x, _number(y)) for x, y in points_of(run)):
            if isinstance(x, int) and not isinstance(x, bool) and not math.isnan(y):
                points[x] = y
        if points:
            series.append(points)
    if not series:
        return {"x": [], "mean": [], "min": [], "max": [], "n": 0}
    xs = sorted(set.intersection(*(set(p) for p in series)))
    values = [[p[x] for p in series] for x in xs]
    mean, low, high = ([f(v) for v in values] for f in (lambda v: sum(v) / len(v), min, max))
    return {"x": xs, "mean": mean, "min": low, "max": high, "n": len(series)}


def _train_points(run: RunResult) -> list[tuple[Any, Any]]:
    """(step, error) of each per-step row where the run has them, else at each epoch's end."""
    if run.steps:
        return [(r["step"], r.get(STEP_ERR)) for r in run.steps]
    return [(r.get("step"), r.get(TRAIN_ERR)) for r in run.metrics]


def _test_points(run: RunResult) -> list[tuple[Any, Any]]:
    return [(r.get("step"), r.get(TEST_ERR)) for r in run.metrics]


def plot_degradation(
    runs: Sequence[RunResult], path: Path, dataset: str | None = None
) -> dict[str, dict[str, Any]]:
    """Training error (dashed, every logged step) and test error (solid, at epoch ends) against
    iterations as in the paper's Fig. 6: plain left, residual right, a colour per depth; the mean
    over seeds, the band their min to max. Returns {label: {"train": curve, "test": curve, "depth",
    "residual", "runs"}}, a curve being {"x", "mean", "min", "max", "n"}: the plotted numbers."""
    runs = list(runs)
    name = dataset or ", ".join(datasets(runs)) or "unknown dataset"
    title = f"{name}: training error (dashed) and test error (solid)"
    plotted_runs = [r for r in runs if r.metrics or r.steps]
    data: dict[str, dict[str, Any]] = {}
    if not plotted_runs:
        _save(_empty_figure(_nothing_plotted(runs), title), path)
        return data

    colours = kind_colours(plotted_runs)
    fig = Figure(figsize=(12, 5.6))
    fig.subplots_adjust(left=0.06, right=0.985, bottom=0.23, top=0.88, wspace=0.05)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, (kind, residual) in zip(axes, KINDS):
        members = [r for r in plotted_runs if bool(r.residual) == residual]
        had_runs = any(bool(r.residual) == residual for r in runs)
        data.update(_degradation_panel(ax, kind, residual, members, had_runs, colours))
    axes[0].set_ylabel("error (%)")
    axes[0].set_ylim(bottom=0)
    fig.suptitle(title)
    _save(fig, path)
    return data


def _degradation_panel(
    ax: Any, kind: str, residual: bool, members: list, had_runs: bool, colours: dict
) -> dict[str, dict[str, Any]]:
    """One kind's panel of Fig. 6 (plain or residual); returns its curves by label."""
    ax.set_title(PANEL_TITLES[residual])
    ax.set_xlabel("iteration")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    if not members:
        _panel_note(ax, f"no {kind} runs with finished epochs" if had_runs else "no runs")
        ax.set_xticks([])
        return {}
    data = {}
    for label, reps in _replicate_sets(members):
        data[label] = _degradation_lines(
            ax, label, reps, residual, colours[residual, reps[0].depth]
        )
    ax.plot([], [], color="0.3", linestyle="--", linewidth=1.0, label="training error")
    ax.plot([], [], color="0.3", linestyle="-", linewidth=2.0, label="test error (epoch ends)")
    _legend_below(ax)
    return data


def _degradation_lines(
    ax: Any, label: str, reps: list[RunResult], residual: bool, colour: Any
) -> dict[str, Any]:
    """Draw one configuration's training and test curves (mean, band over seeds)."""
    train, test = _curve(reps, _train_points), _curve(reps, _test_points)
    failed = sorted({r.status for r in reps if not r.ok})
    note = f" [{', '.join(failed)}]" if failed else ""
    seeds = f", mean of {train['n']}" if train["n"] > 1 else ""
    ax.plot(train["x"], train["mean"], linestyle="--", linewidth=1.0, color=colour)
    ax.plot(
        test["x"], test["mean"], linestyle="-", linewidth=2.0, marker="o", markersize=3,
        color=colour, label=f"{label}{seeds}{note}",
    )  # fmt: skip
    if train["n"] > 1:
        ax.fill_between(train["x"], train["min"], train["max"], color=colour, alpha=0.15)
        ax.fill_between(test["x"], test["min"], test["max"], color=colour, alpha=0.25)
    out = {"train": train, "test": test, "depth": reps[0].depth, "residual": residual}
    return {**out, "runs": [r.name for r in reps]}


def _stage_rank(key: str) -> tuple[int, int] | None:
    """Where a `grad_norm/*` key sits in the network (stem, stage1..K, head); None: not a stage."""
    name = key.removeprefix(GRAD_NORM) if key.startswith(GRAD_NORM) else ""
    if name in ("stem", "head"):
        return (0 if name == "stem" else 2, 0)
    stage = name.removeprefix("stage")
    return (1, int(stage)) if name.startswith("stage") and stage.isdigit() else None


def _stage_names(row: dict[str, Any]) -> list[str]:
    """`grad_norm/*` keys of one row in network order: stem, stage1..K, head."""
    return sorted((k for k in row if _stage_rank(k) is not None), key=_stage_rank)


def plot_gradients(runs: Sequence[RunResult], path: Path) -> dict[str, dict[str, Any]]:
    """Gradient norm of each stage, log scale, plain vs residual: per configuration the mean over
    seeds, banded by their min to max, at the first epoch (where vanishing gradients show) and,
    below, the last. Returns `_gradient_entry`'s numbers by label."""
    runs = list(runs)
    title = "per-stage gradient norm (log scale)"
    usable = [r for r in runs if r.metrics and _stage_names(r.metrics[0])]
    if not usable:
        message = _nothing_plotted(runs)
        if any(r.metrics for r in runs):
            message = "no grad_norm/* values in the metrics of this sweep"
        _save(_empty_figure(message, title), path)
        return {}

    order = sorted({k for r in usable for k in _stage_names(r.metrics[0])}, key=_stage_rank)
    position = {k: i for i, k in enumerate(order)}
    rows = ["first", "last"] if any(len(r.metrics) > 1 for r in usable) else ["first"]
    colours = kind_colours(usable)
    fig, axes = _gradients_grid(len(rows))
    data = {label: _gradient_entry(reps, order) for label, reps in _replicate_sets(usable)}
    for row_index, which in enumerate(rows):
        for col, residual in enumerate((False, True)):
            ax = axes[row_index][col]
            ax.set_title(f"{PANEL_TITLES[residual]} - {which} epoch")
            members = {k: e for k, e in data.items() if e["residual"] == residual}
            for label, entry in members.items():
                _gradient_line(ax, label, entry, which, position, colours[residual, entry["depth"]])
            if not members:
                _panel_note(ax, "no runs")
            ax.set_xticks(range(len(order)), [k.removeprefix(GRAD_NORM) for k in order])
    for ax in axes[-1]:
        ax.set_xlabel("stage (input → output)")
        _legend_below(ax)
    fig.suptitle(title)
    _save(fig, path)
    return data


def _gradient_entry(reps: list[RunResult], order: list[str]) -> dict[str, Any]:
    """The numbers plot_gradients draws for one configuration: per stage (in network order) the
    mean, min and max over its runs at their first and last epoch."""
    names = [k for k in order if all(k in r.metrics[0] for r in reps)]
    entry: dict[str, Any] = {"x": [k.removeprefix(GRAD_NORM) for k in names]}
    for which, row in (("first", 0), ("last", -1)):
        values = [[_number(r.metrics[row].get(k)) for r in reps] for k in names]
        entry[which] = [sum(v) / len(v) for v in values]
        entry[f"{which}_band"] = ([min(v) for v in values], [max(v) for v in values])
        epochs = sorted({r.metrics[row].get("epoch", row % len(r.metrics) + 1) for r in reps})
        entry[f"{which}_epoch"] = epochs[0] if len(epochs) == 1 else f"{epochs[0]}-{epochs[-1]}"
    status = sorted({r.status for r in reps if not r.ok})
    first = {"depth": reps[0].depth, "residual": bool(reps[0].residual), "status": status}
    return {**entry, **first, "n": len(reps), "runs": [r.name for r in reps]}


def _gradients_grid(rows: int) -> tuple[Figure, Any]:
    """A figure of `rows` x 2 log-scale panels (plain left, residual right)."""
    height = 4.2 * rows + 1.6  # and the legends below
    fig = Figure(figsize=(12, height))
    fig.subplots_adjust(0.07, 1.35 / height, 0.985, 1 - 0.75 / height, wspace=0.05, hspace=0.25)
    axes = fig.subplots(rows, 2, sharey=True, sharex=True, squeeze=False)
    for ax in axes[:, 0]:
        ax.set_ylabel("gradient L2 norm")
    for ax in axes.flat:
        ax.set_yscale("log")
        # 1-2-5 labelled ticks: readable over the one or two decades a sweep spans, and cheaper
        # to draw than the default unlabelled minor log ticks
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.grid(True, alpha=0.3)
    return fig, axes


def _gradient_line(
    ax: Any, label: str, entry: dict, which: str, position: dict, colour: Any
) -> None:
    """One configuration's stage norms at its first or last epoch: the mean, a band over seeds."""
    xs = [position[GRAD_NORM + name] for name in entry["x"]]
    ys = [v if v > 0 else math.nan for v in entry[which]]  # log axis: no zeros
    seeds = f", mean of {entry['n']}" if entry["n"] > 1 else ""
    status = f" [{', '.join(entry['status'])}]" if entry["status"] else ""
    label = f"{label}{seeds} (epoch {entry[which + '_epoch']}){status}"
    ax.plot(xs, ys, marker="o", linewidth=1.8, color=colour, label=label)
    if entry["n"] > 1:
        ax.fill_between(xs, *entry[f"{which}_band"], color=colour, alpha=0.2)


def response_profiles(runs: Sequence[RunResult]) -> dict[str, dict[str, Any]]:
    """Per configuration: layer index, mean std over completed replicates (network order), and the
    same values sorted by magnitude (descending), as Fig. 7 draws them."""
    out: dict[str, dict[str, Any]] = {}
    usable = [r for r in runs if r.ok and r.responses]
    for label, reps in _replicate_sets(usable):
        length = min(len(r.responses) for r in reps)
        mean = [sum(r.responses[i]["std"] for r in reps) / len(reps) for i in range(length)]
        first = {"depth": reps[0].depth, "residual": bool(reps[0].residual), "n": len(reps)}
        layers = list(range(1, length + 1))
        out[label] = {"layer": layers, "std": mean, "sorted": sorted(mean, reverse=True), **first}
    return out


def plot_layer_responses(runs: Sequence[RunResult], path: Path) -> dict[str, dict[str, Any]]:
    """Std of each 3x3 layer's response: network order (top) and sorted by magnitude (bottom);
    plain dashed, residual solid, a colour per depth. Returns `response_profiles(runs)`."""
    title = "layer responses: std of each 3x3 layer's output (after BN, before addition/ReLU)"
    data = response_profiles(runs)
    if not data:
        _save(_empty_figure("no completed run recorded layer responses", title), path)
        return data
    colours = kind_colours(r for r in runs if r.ok and r.responses)
    fig = Figure(figsize=(12, 8))
    fig.subplots_adjust(left=0.07, right=0.8, bottom=0.07, top=0.92, hspace=0.3)
    axes = fig.subplots(2, 1)
    for ax, key, xlabel in (
        (axes[0], "std", "layer index (original network order)"),
        (axes[1], "sorted", "layer index (sorted by magnitude)"),
    ):
        for label, entry in data.items():
            ax.plot(
                entry["layer"], entry[key], color=colours[entry["residual"], entry["depth"]],
                linestyle="-" if entry["residual"] else "--", linewidth=1.6,
                label=label + (f", mean of {entry['n']}" if entry["n"] > 1 else ""),
            )  # fmt: skip
        ax.set_xlabel(xlabel)
        ax.set_ylabel("std")
        ax.grid(True, alpha=0.3)
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.suptitle(title + "; plain dashed, residual solid")
    _save(fig, path)
    return data
