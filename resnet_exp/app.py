"""The one Hydra-aware entry point: compose -> instantiate -> train -> record."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from resnet_exp.config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    from hydra.utils import instantiate

    model = instantiate(cfg.model)
    print(model.describe())


if __name__ == "__main__":
    main()
