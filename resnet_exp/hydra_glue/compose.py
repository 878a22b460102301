"""Compose the packaged config tree outside ``@hydra.main`` (summary tool, tests, reports)."""

from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig

from resnet_exp.hydra_glue.register import register_configs


def compose(overrides: Sequence[str] = (), return_hydra_config: bool = False) -> DictConfig:
    """The config ``python -m resnet_exp <overrides>`` would run with."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from resnet_exp.config_dir import config_dir

    register_configs()
    _refuse_null_groups(overrides)
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return hydra_compose(
            config_name="config",
            overrides=list(overrides),
            return_hydra_config=return_hydra_config,
        )


def _refuse_null_groups(overrides: Sequence[str]) -> None:
    """``data=null`` sets a config group to nothing; Hydra's defaults list answers with a bare
    ValueError (a traceback). Said here as a composition error naming the group's options."""
    from hydra.errors import ConfigCompositionException

    from resnet_exp.config_dir import config_dir

    root = config_dir()
    for override in overrides:
        key, sep, value = override.partition("=")
        group = key.lstrip("+~")
        if not sep or value.strip().lower() != "null" or key.startswith("~"):
            continue
        folder = root / group
        if folder.is_dir() and not (root / f"{group}.yaml").is_file():
            options = sorted(p.stem for p in folder.glob("*.yaml"))
            raise ConfigCompositionException(
                f"{group}={value.strip()}: a config group cannot be set to null; choose one of "
                f"its options ({', '.join(options)}), or leave {group} out for its default."
            )


def composition_error(error: BaseException) -> str:
    """Hydra's composition error with its reason: ``Error merging override data.std=0`` alone does
    not say why; the first line of the cause (OmegaConf's validation message) does."""
    message = " ".join(str(error).split("\nSee https://")[0].split())
    if message.startswith("Could not override '"):  # Hydra's hint (+key=...) only adds a key
        key = message.split("'")[1]
        message = f"{key} is not a config key"
    cause = error.__cause__ or error.__context__
    if cause is not None:
        reason = (str(cause).strip().splitlines() or [""])[0].strip()
        if reason and reason not in message:
            message = f"{message.rstrip('.')}: {reason}"
    return message
