"""The sweep's figures: degradation (the paper's Fig. 6), gradients and layer responses (Fig. 7).

Figures are drawn on a bare `matplotlib.figure.Figure` with the Agg canvas, never through pyplot: no
global backend switch, no display needed, and safe in a Hydra callback running in a worker process.
Each function returns the numbers it plotted, so tests check data rather than pixels.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator

from resnet_exp.atomic import atomic_path
from resnet_exp.report.aggregate import RunResult, datasets
from resnet_exp.tracking.record import STEP_ERR

FAMILIES = (("plain", False), ("residual", True))
PANEL_TITLES = {"plain": "plain networks", "residual": "residual networks (ResNet)"}
DPI = 120


# -------------------------------------------------------------------------------------------------
# Labels and colours


def _base_label(run: RunResult) -> str:
    depth = "?" if run.depth is None else str(run.depth)
    return f"ResNet-{depth}" if run.residual else f"plain-{depth}"


def run_labels(runs: Sequence[RunResult]) -> list[str]:
    """Legend labels ("plain-20", "ResNet-56"), qualified only where two runs would share one.

    Qualifiers are tried in order (block, shortcut option, seed, job directory) and the first that
    tells the clashing runs apart is appended, e.g. "ResNet-20 (preact)".
    """
    labels = [_base_label(r) for r in runs]
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


def depth_colours(depths: Sequence[int | None]) -> dict[int | None, Any]:
    """One colour per depth (same depth, same colour, in every panel): tab10 in depth order, or an
    ordered viridis ramp when there are more than ten depths."""
    from matplotlib import colormaps

    ordered = sorted(set(depths), key=lambda d: math.inf if d is None else d)
    if len(ordered) <= 10:
        palette = colormaps["tab10"]
        return {d: palette(i) for i, d in enumerate(ordered)}
    cmap = colormaps["viridis"]
    span = max(len(ordered) - 1, 1)
    return {d: cmap(0.9 * i / span) for i, d in enumerate(ordered)}


def _number(value: Any) -> float:
    """A plottable float: missing or non-finite values (diverged runs) become NaN, i.e. a gap."""
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def _status_note(run: RunResult) -> str:
    return "" if run.status == "completed" else f" [{run.status}]"


def _dataset_name(runs: Sequence[RunResult], dataset: str | None) -> str:
    if dataset:
        return dataset
    names = datasets(runs)
    return ", ".join(names) if names else "unknown dataset"


def _save(fig: Figure, path: Path) -> Path:
    """Render to a temp file beside `path`, then rename: readers never see a half-written PNG."""
    path = Path(path)
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return path


def _empty_figure(message: str, title: str) -> Figure:
    fig = Figure(figsize=(10, 4))
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=12, wrap=True)
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
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=12,
        color="0.4",
    )


# -------------------------------------------------------------------------------------------------
# Fig. 6: error against iterations, mean and band over replicate seeds


def _replicate_sets(runs: Sequence[RunResult]) -> list[tuple[str, list[RunResult]]]:
    """(label, replicates) per configuration, labelled as run_labels would label one of them."""
    by_config: dict[str, list[RunResult]] = {}
    for run in runs:
        by_config.setdefault(run.configuration or run.config, []).append(run)
    firsts = [members[0] for members in by_config.values()]
    labels = run_labels(firsts) if len({r.config for r in firsts}) == len(firsts) else []
    if len(set(labels)) != len(labels) or any("seed" in label for label in labels):
        labels = [f"{_base_label(r)} ({r.config})" for r in firsts]
    return list(zip(labels, by_config.values()))


def _curve(runs: Sequence[RunResult], rows_of: Callable, x_key: str, y_key: str) -> dict:
    """Mean, min and max over replicates at each x (only x values every replicate has)."""
    series = []
    for run in runs:
        points = {}
        for row in rows_of(run):
            x, y = row.get(x_key), _number(row.get(y_key))
            if isinstance(x, int) and not isinstance(x, bool) and not math.isnan(y):
                points[x] = y
        if points:
            series.append(points)
    if not series:
        return {"x": [], "mean": [], "min": [], "max": [], "n": 0}
    xs = sorted(set.intersection(*(set(p) for p in series)))
    values = [[p[x] for p in series] for x in xs]
    return {
        "x": xs,
        "mean": [sum(v) / len(v) for v in values],
        "min": [min(v) for v in values],
        "max": [max(v) for v in values],
        "n": len(series),
    }


def _train_rows(run: RunResult) -> list[dict[str, Any]]:
    """Per-step rows where the run has them, else its epoch rows (error at each epoch's end)."""
    if run.steps:
        return [{"step": r["step"], "err": r.get(STEP_ERR)} for r in run.steps]
    return [{"step": r.get("step"), "err": r.get("train/err")} for r in run.metrics]


def _test_rows(run: RunResult) -> list[dict[str, Any]]:
    return [{"step": r.get("step"), "err": r.get("test/err")} for r in run.metrics]


def plot_degradation(
    runs: Sequence[RunResult], path: Path, dataset: str | None = None
) -> dict[str, dict[str, Any]]:
    """Training error (dashed, every logged step) and test error (solid, at epoch ends) against
    iterations, like Fig. 6 of He et al. 2015: plain left, residual right, one colour per depth.

    With replicate seeds each line is their mean and the band spans their min to max. Returns
    {label: {"train": curve, "test": curve, "depth", "residual", "runs"}} where a curve is
    {"x", "mean", "min", "max", "n"}: exactly the plotted numbers.
    """
    runs = list(runs)
    title = f"{_dataset_name(runs, dataset)}: training error (dashed) and test error (solid)"
    plotted_runs = [r for r in runs if r.metrics or r.steps]
    data: dict[str, dict[str, Any]] = {}
    if not plotted_runs:
        _save(_empty_figure(_nothing_plotted(runs), title), path)
        return data

    colours = depth_colours([r.depth for r in plotted_runs])
    fig = Figure(figsize=(12, 5))
    fig.subplots_adjust(left=0.06, right=0.985, bottom=0.11, top=0.86, wspace=0.05)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, (family, residual) in zip(axes, FAMILIES):
        members = [r for r in plotted_runs if bool(r.residual) == residual]
        had_runs = any(bool(r.residual) == residual for r in runs)
        data.update(_degradation_panel(ax, family, residual, members, had_runs, colours))
    axes[0].set_ylabel("error (%)  -  band: min to max over seeds")
    axes[0].set_ylim(bottom=0)
    fig.suptitle(title)
    _save(fig, path)
    return data


def _degradation_panel(
    ax: Any,
    family: str,
    residual: bool,
    members: list[RunResult],
    had_runs: bool,
    colours: dict[int | None, Any],
) -> dict[str, dict[str, Any]]:
    """One family's panel of Fig. 6; returns its curves by label."""
    ax.set_title(PANEL_TITLES[family])
    ax.set_xlabel("iteration")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    if not members:
        _panel_note(ax, f"no {family} runs with finished epochs" if had_runs else "no runs")
        ax.set_xticks([])
        return {}
    data = {}
    for label, reps in _replicate_sets(members):
        data[label] = _degradation_lines(ax, label, reps, residual, colours[reps[0].depth])
    handles, texts = ax.get_legend_handles_labels()
    handles += [
        Line2D([], [], color="0.3", linestyle="--", linewidth=1.0),
        Line2D([], [], color="0.3", linestyle="-", linewidth=2.0),
    ]
    texts += ["training error", "test error (epoch ends)"]
    ax.legend(handles, texts, loc="upper right", fontsize=9, framealpha=0.85)
    return data


def _degradation_lines(
    ax: Any, label: str, reps: list[RunResult], residual: bool, colour: Any
) -> dict[str, Any]:
    """Draw one configuration's training and test curves (mean, band over seeds)."""
    train = _curve(reps, _train_rows, "step", "err")
    test = _curve(reps, _test_rows, "step", "err")
    note = (
        ""
        if all(r.ok for r in reps)
        else " [" + ", ".join(sorted({r.status for r in reps if not r.ok})) + "]"
    )
    seeds = f", mean of {train['n']}" if train["n"] > 1 else ""
    ax.plot(train["x"], train["mean"], linestyle="--", linewidth=1.0, color=colour)
    ax.plot(
        test["x"], test["mean"], linestyle="-", linewidth=2.0, marker="o", markersize=3,
        color=colour, label=f"{label}{seeds}{note}",
    )  # fmt: skip
    if train["n"] > 1:
        ax.fill_between(train["x"], train["min"], train["max"], color=colour, alpha=0.15)
        ax.fill_between(test["x"], test["min"], test["max"], color=colour, alpha=0.25)
    return {
        "train": train,
        "test": test,
        "depth": reps[0].depth,
        "residual": residual,
        "runs": [r.name for r in reps],
    }


# -------------------------------------------------------------------------------------------------
# Gradient norms per stage


def _stage_names(row: dict[str, Any]) -> list[str]:
    """`grad_norm/*` keys of one row in network order: stem, stage1..K, head."""
    stages = sorted(
        (
            k
            for k in row
            if k.startswith("grad_norm/stage") and k[len("grad_norm/stage") :].isdigit()
        ),
        key=lambda k: int(k[len("grad_norm/stage") :]),
    )
    names = [k for k in ("grad_norm/stem",) if k in row] + stages
    return names + [k for k in ("grad_norm/head",) if k in row]


def _short(key: str) -> str:
    return key.split("/", 1)[1]


def plot_gradients(runs: Sequence[RunResult], path: Path) -> dict[str, dict[str, Any]]:
    """Gradient norm of each stage (stem, stage1..K, head) on a log scale, plain vs residual.

    The top row uses each run's first epoch, where vanishing gradients in deep plain nets show (the
    early stages get orders of magnitude less gradient than in their residual twins); a second row
    shows the last epoch when any run has more than one. Returns {label: {"x", "first", "last",
    "first_epoch", "last_epoch", "depth", "residual", "status"}}.
    """
    runs = list(runs)
    title = "per-stage gradient norm (log scale)"
    labels = dict(zip(map(id, runs), run_labels(runs)))
    usable = [r for r in runs if r.metrics and _stage_names(r.metrics[0])]
    if not usable:
        message = _nothing_plotted(runs)
        if any(r.metrics for r in runs):
            message = "no grad_norm/* values in the metrics of this sweep"
        _save(_empty_figure(message, title), path)
        return {}

    order = _stage_order(usable)
    position = {k: i for i, k in enumerate(order)}
    rows = ["first", "last"] if any(len(r.metrics) > 1 for r in usable) else ["first"]
    colours = depth_colours([r.depth for r in usable])
    fig, axes = _gradients_grid(len(rows))
    data = {labels[id(run)]: _gradient_entry(run) for run in usable}
    for row_index, which in enumerate(rows):
        for col, (family, residual) in enumerate(FAMILIES):
            ax = axes[row_index][col]
            ax.set_title(f"{PANEL_TITLES[family]} - {which} epoch")
            members = [r for r in usable if bool(r.residual) == residual]
            for run in members:
                label = labels[id(run)]
                _gradient_line(ax, label, data[label], which, position, run, colours[run.depth])
            if members:
                ax.legend(fontsize=8, loc="best", framealpha=0.85)
            else:
                _panel_note(ax, "no runs")
            if col == 0:
                ax.set_ylabel("gradient L2 norm")
            ax.set_xticks(range(len(order)), [_short(k) for k in order])
            if row_index == len(rows) - 1:
                ax.set_xlabel("stage (input → output)")
    fig.suptitle(title)
    _save(fig, path)
    return data


def _stage_order(usable: Sequence[RunResult]) -> list[str]:
    """Union of the runs' stage names in network order (families may differ in K)."""
    order: list[str] = []
    for run in usable:
        for key in _stage_names(run.metrics[0]):
            if key not in order:
                order.append(key)
    order.sort(key=lambda k: (k != "grad_norm/stem", k == "grad_norm/head", _stage_index(k)))
    return order


def _gradient_entry(run: RunResult) -> dict[str, Any]:
    """The numbers plot_gradients draws for one run (first and last epoch)."""
    names = _stage_names(run.metrics[0])
    first, last = run.metrics[0], run.metrics[-1]
    return {
        "x": [_short(k) for k in names],
        "first": [_number(first.get(k)) for k in names],
        "last": [_number(last.get(k)) for k in names],
        "first_epoch": first.get("epoch", 1),
        "last_epoch": last.get("epoch", len(run.metrics)),
        "depth": run.depth,
        "residual": bool(run.residual),
        "status": run.status,
    }


def _gradients_grid(rows: int) -> tuple[Figure, Any]:
    """A figure of `rows` x 2 log-scale panels (plain left, residual right)."""
    height = 4.2 * rows + 0.8
    fig = Figure(figsize=(12, height))
    fig.subplots_adjust(
        left=0.07,
        right=0.985,
        bottom=0.55 / height,
        top=1 - 0.75 / height,
        wspace=0.05,
        hspace=0.25,
    )
    axes = fig.subplots(rows, 2, sharey=True, sharex=True, squeeze=False)
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
    ax: Any,
    label: str,
    entry: dict[str, Any],
    which: str,
    position: dict[str, int],
    run: RunResult,
    colour: Any,
) -> None:
    """One run's stage norms at its first (`which="first"`) or last epoch, at their x positions."""
    xs = [position["grad_norm/" + n] for n in entry["x"]]
    ys = [v if v > 0 else math.nan for v in entry[which]]  # log axis: no zeros
    ax.plot(
        xs,
        ys,
        marker="o",
        linewidth=1.8,
        color=colour,
        label=f"{label} (epoch {entry[which + '_epoch']}){_status_note(run)}",
    )


def _stage_index(key: str) -> int:
    tail = key[len("grad_norm/stage") :] if key.startswith("grad_norm/stage") else ""
    return int(tail) if tail.isdigit() else 0


# -------------------------------------------------------------------------------------------------
# Fig. 7: layer responses


def response_profiles(runs: Sequence[RunResult]) -> dict[str, dict[str, Any]]:
    """Per configuration: layer index, mean std over completed replicates (network order), and the
    same values sorted by magnitude (descending), as Fig. 7 draws them."""
    out: dict[str, dict[str, Any]] = {}
    usable = [r for r in runs if r.ok and r.responses]
    for label, reps in _replicate_sets(usable):
        length = min(len(r.responses) for r in reps)
        mean = [sum(r.responses[i]["std"] for r in reps) / len(reps) for i in range(length)]
        out[label] = {
            "layer": list(range(1, length + 1)),
            "std": mean,
            "sorted": sorted(mean, reverse=True),
            "depth": reps[0].depth,
            "residual": bool(reps[0].residual),
            "n": len(reps),
        }
    return out


def plot_layer_responses(runs: Sequence[RunResult], path: Path) -> dict[str, dict[str, Any]]:
    """Std of each 3x3 layer's response: network order (top) and sorted by magnitude (bottom);
    plain dashed, residual solid, a colour per depth. Returns `response_profiles(runs)`."""
    title = "layer responses: std of each 3x3 layer's output (after BN, before addition/ReLU)"
    data = response_profiles(runs)
    if not data:
        _save(_empty_figure("no completed run recorded layer responses", title), path)
        return data
    colours = depth_colours([entry["depth"] for entry in data.values()])
    fig = Figure(figsize=(12, 8))
    fig.subplots_adjust(left=0.07, right=0.985, bottom=0.07, top=0.92, hspace=0.3)
    axes = fig.subplots(2, 1)
    for ax, key, xlabel in (
        (axes[0], "std", "layer index (original network order)"),
        (axes[1], "sorted", "layer index (sorted by magnitude)"),
    ):
        for label, entry in data.items():
            ax.plot(
                entry["layer"], entry[key], color=colours[entry["depth"]],
                linestyle="-" if entry["residual"] else "--", linewidth=1.6,
                label=label + (f", mean of {entry['n']}" if entry["n"] > 1 else ""),
            )  # fmt: skip
        ax.set_xlabel(xlabel)
        ax.set_ylabel("std")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="upper right", framealpha=0.85, ncol=2)
    fig.suptitle(title + "; plain dashed, residual solid")
    _save(fig, path)
    return data
