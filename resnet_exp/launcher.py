"""Kept only for resnet_exp.config's import; the code lives in resnet_exp.hydra_glue."""

from resnet_exp.hydra_glue.resolvers import register_resolvers

__all__ = ["register_resolvers"]
