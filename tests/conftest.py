"""Shared test setup: W&B never goes online and never writes outside a temp dir."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _offline_wandb(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path_factory.mktemp("wandb-home")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(home))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(Path(home) / "config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(Path(home) / "cache"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
