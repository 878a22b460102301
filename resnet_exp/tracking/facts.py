"""The experiment tracker's choices and defaults: the one home of the W&B modes and defaults.

Torch- and wandb-free: the schema (:mod:`resnet_exp.config`), the logger
(:mod:`resnet_exp.tracking.wandb_logger`) and ``python -m resnet_exp.report`` read them here.
"""

from __future__ import annotations

#: ``logger.mode``: ``auto`` goes online when a W&B login is found, else offline.
LOGGER_MODES = ("auto", "online", "offline", "disabled")

#: The W&B project a run logs to unless ``logger.project`` names another.
WANDB_PROJECT = "resnet-exp"

#: Seconds an online ``wandb.init`` may take before the run falls back to offline.
WANDB_INIT_TIMEOUT_S = 15.0
