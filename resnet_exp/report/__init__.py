"""Sweep reports: summary.csv, report.md, report.html and the figures (`figures.FIGURES`); names
load their submodule on first use (importing the Hydra callback pulls in no matplotlib).
"""

from __future__ import annotations

import importlib
from typing import Any

from resnet_exp import caches

caches.keep_private()  # before any module here loads matplotlib: its cache never in the home

_EXPORTS = {
    "RunResult": "aggregate", "collect_runs": "aggregate", "write_summary_csv": "study",
    "plot_degradation": "plots", "plot_gradients": "plots", "write_report": "markdown",
    "ReportError": "build", "ReportResult": "build", "build_report": "build",
    "log_report_to_wandb": "build", "refresh_report": "callback",
}  # fmt: skip

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
