"""`python -m resnet_exp.report <sweep_dir> [--no-wandb]`: (re)build a sweep's report.

Rewrites every report file from the run records on disk (useful while a sweep still runs), prints
what a sweep prints at its end, and logs the report to W&B as configured for the sweep (its
multirun.yaml `logger` node; `--mode`/`--project`/`--group` override, `--no-wandb` skips it).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from resnet_exp.errors import UserError
from resnet_exp.report.aggregate import find_job_dirs
from resnet_exp.report.build import build_report, log_report_to_wandb, logger_settings
from resnet_exp.report.console import end_lines, shown
from resnet_exp.tracking.facts import LOGGER_MODES
from resnet_exp.tracking.record import HYDRA_CONFIG, MULTIRUN_YAML, RunFiles


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m resnet_exp.report",
        description="(Re)build a sweep's summary.csv, report.md, report.html and figures.",
    )
    parser.add_argument("sweep_dir", type=Path, help="e.g. outputs/multirun/<date>/<time>")
    parser.add_argument("--no-wandb", action="store_true", help="do not log the report to W&B")
    parser.add_argument(
        "--mode",
        choices=LOGGER_MODES,
        help="W&B mode (default: the sweep's logger.mode; none if it ran with logger=none)",
    )
    parser.add_argument("--project", help="W&B project (default: the sweep's logger.project)")
    parser.add_argument("--group", help="W&B group (default: logger.group, else the sweep id)")
    parser.add_argument("--entity", help="W&B entity (default: the sweep's logger.entity)")
    return parser


def sweep_logger_config(sweep_dir: Path) -> dict[str, Any] | None:
    """The `logger` node the sweep ran with: multirun.yaml, else the first job's
    .hydra/config.yaml."""
    candidates = [sweep_dir / MULTIRUN_YAML]
    candidates += [RunFiles(d).hydra_dir / HYDRA_CONFIG for d in find_job_dirs(sweep_dir)[:1]]
    for path in candidates:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, yaml.YAMLError):  # ValueError: not UTF-8
            continue
        if isinstance(data, dict) and "logger" in data:
            logger = data["logger"]
            return logger if isinstance(logger, dict) else {}
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for a user error such as a bad directory)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("resnet_exp").setLevel(logging.INFO)
    try:
        result = build_report(args.sweep_dir)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    where = shown(args.sweep_dir)
    wrote = "rebuilt the report in"  # summary.csv, report.md/.html, the figures
    print(wrote, where, sep="\n  " if len(wrote) + len(where) >= 80 else " ")  # 80 columns
    print("\n".join(end_lines(result.runs, result.paths["report_md"])))

    if args.no_wandb:
        return 0
    settings = logger_settings(sweep_logger_config(args.sweep_dir))
    if args.mode is not None:
        settings = dict(settings or {}, mode=args.mode)
    if settings is None or settings.get("mode") == "disabled":
        print("W&B: off for this sweep (logger=none or logger.mode=disabled; --mode to log it).")
        return 0
    given = {"project": args.project, "group": args.group, "entity": args.entity}
    settings.update((key, value) for key, value in given.items() if value)
    info = log_report_to_wandb(args.sweep_dir, result.runs, **settings)
    if info and not info["sync"]:  # an offline run's `wandb sync` hint is logged already
        print(f"W&B report run: run {info['run_id']} ({info['mode']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
