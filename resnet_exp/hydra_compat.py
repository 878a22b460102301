"""Kept only for resnet_exp.config's import; the code lives in resnet_exp.hydra_glue."""

from resnet_exp.hydra_glue.internals import allow_numeric_group_options

__all__ = ["allow_numeric_group_options"]
