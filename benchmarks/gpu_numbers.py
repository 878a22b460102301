"""The short table ``benchmarks/gpu.sh`` prints last: what each step measured, in one screen.

Reads the benchmark JSONs of the run, the study's per-job ``summary.json`` / ``metrics.jsonl``, the
GPU load samples (``nvidia-smi --query-gpu=... -l 2``) and the report's verdict; extrapolates the
study's wall time to 30 epochs from its longest job's epoch times (epochs cost the same).

    python -m benchmarks.gpu_numbers --bench DIR --sweep DIR [--load CSV] --epochs N --study-s S
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

TARGET_EPOCHS = 30
TRAIN_STEP_RUNS = ("train_step_r20_fp32", "train_step_r20_bf16_nhwc", "train_step_r56_bf16_nhwc")
SPEED_RUNS = ("speed_switches_eager", "speed_switches_compile")


def _load(bench: Path, name: str) -> dict | None:
    path = bench / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def benchmark_lines(bench: Path) -> list[str]:
    lines = ["== (a) Trainer vs bare loop (img/s)"]
    for name in TRAIN_STEP_RUNS:
        r = _load(bench, name)
        if r is None:
            lines.append(f"  {name}: no result")
            continue
        rows = {x["variant"]: x for x in r["rows"]}
        lines.append(
            f"  {name}: bare {rows['bare']['img_per_s']:.0f}, trainer "
            f"{rows['trainer']['img_per_s']:.0f}, trainer/bare {r['trainer_vs_bare']:.3f}, "
            f"grad norms {100 * r['grad_norm_cost']:+.1f}%"
        )
    for name in SPEED_RUNS:
        r = _load(bench, name)
        if r is None:
            lines.append(f"== (c) {name}: no result")
            continue
        auto = r["auto"]
        lines.append(
            f"== (c) {name}, batch {r['config']['batch_size']} (auto here: {auto['precision']}, "
            f"channels_last {auto['channels_last']}, compile {auto['compile']})"
        )
        for x in r["rows"]:
            img_s = 1000 * r["config"]["batch_size"] / x["ms_per_step"]
            compiled = f"  cold compile {x['compile_s']:.0f} s" if x["compile_s"] != "" else ""
            lines.append(
                f"  {x['model']:9s} {x['precision']:>4s} {x['layout']} {x['mode']:8s} "
                f"{img_s:8.0f} img/s  x{x['paired_speed']:.2f} vs fp32 NCHW eager{compiled}"
            )
    r = _load(bench, "input_pipeline")
    lines.append("== (b) input pipeline" + ("" if r else ": no result"))
    for x in (r or {}).get("rows", []):
        lines.append(f"  {x['pipeline']:28s} {x['img_per_s']:9.0f} img/s")
    return lines


def _epoch_rows(job: Path) -> list[dict]:
    path = job / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [row for row in rows if "time/epoch_s" in row]


def study_lines(sweep: Path, epochs: int, study_s: float) -> list[str]:
    lines = [f"== study: {epochs} epochs, wall {study_s:.0f} s"]
    trained = []
    for summary_path in sorted(sweep.glob("*/summary.json"), key=lambda p: p.parent.name):
        s = json.loads(summary_path.read_text())
        rows = _epoch_rows(summary_path.parent)
        trained.append(sum(row["time/epoch_s"] for row in rows))
        last = rows[-1] if rows else {}
        model, speed = s.get("model") or {}, s.get("speed") or {}
        name = f"{model.get('block', '?')}-{model.get('depth', '?')}"
        lines.append(
            f"  {name:9s} {s.get('status', '?'):11s} epochs {len(rows)}, wall "
            f"{s.get('wall_time_s') or 0:5.0f} s, {last.get('throughput/img_s', 0):6.0f} img/s, "
            f"train err {last.get('train/err', float('nan')):.2f}, "
            f"test err {last.get('test/err', float('nan')):.2f}, {speed.get('precision')}/"
            f"{'NHWC' if speed.get('channels_last') else 'NCHW'}/"
            f"{'compiled' if speed.get('compile') else 'eager'}"
        )
    if not trained:
        return [*lines, "  no job ran"]
    if study_s and epochs and max(trained) > 0:
        longest = max(trained)
        estimate = study_s + longest * (TARGET_EPOCHS / epochs - 1)
        lines.append(
            f"  the longest job trained {longest:.0f} s; {TARGET_EPOCHS} epochs would take about "
            f"{estimate:.0f} s of study wall (extrapolated from {epochs})"
        )
    return lines


def load_lines(load: Path) -> list[str]:
    """Mean and max GPU utilisation from nvidia-smi's CSV (header, then one row per sample)."""
    if not load.is_file():
        return []
    util = []
    with load.open() as handle:
        for row in list(csv.reader(handle))[1:]:
            try:
                util.append(float(row[1]))
            except (IndexError, ValueError):
                continue
    if not util:
        return []
    return [
        f"  GPU utilisation during the study: mean {sum(util) / len(util):.0f}%, max "
        f"{max(util):.0f}% ({len(util)} samples, every 2 s)"
    ]


def verdict_lines(sweep: Path) -> list[str]:
    report = sweep / "report.md"
    if not report.is_file():
        return ["(no report.md)"]
    text = report.read_text()
    start = text.find("## Verdict")
    if start < 0:
        return ["(report.md has no verdict section)"]
    end = text.find("\n## ", start + 5)
    return [text[start : end if end > 0 else None].strip()]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bench", type=Path, required=True)
    p.add_argument("--sweep", type=Path, required=True)
    p.add_argument("--load", type=Path, default=Path("/nonexistent"))
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--study-s", type=float, default=0.0)
    args = p.parse_args(argv)
    lines = benchmark_lines(args.bench)
    lines += study_lines(args.sweep, args.epochs, args.study_s)
    lines += load_lines(args.load)
    lines += verdict_lines(args.sweep)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
