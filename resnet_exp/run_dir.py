"""Kept only for resnet_exp.config's import; the code lives in resnet_exp.hydra_glue."""

from resnet_exp.hydra_glue.run_dir import register_resolver

__all__ = ["register_resolver"]
