"""The one home of the W&B modes and defaults; torch- and wandb-free, so the schema reads it."""

from __future__ import annotations

#: ``logger.mode``: ``auto`` goes online when a W&B login is found, else offline.
LOGGER_MODES = ("auto", "online", "offline", "disabled")

#: The W&B project a run logs to unless ``logger.project`` names another.
WANDB_PROJECT = "resnet-exp"

#: Seconds an online ``wandb.init`` may take before the run falls back to offline.
WANDB_INIT_TIMEOUT_S = 15.0
