"""What Hydra must know before it composes ``conf/``: our schemas and our resolvers (idempotent).

``config.py`` holds plain dataclasses; this is where they enter Hydra's ConfigStore, under
root-level names (not a ``schema/`` group, so ``--help`` lists only the groups a user chooses), and
where each ``${resnet_exp.*:...}`` resolver of the YAML files is bound to its function.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from resnet_exp import config


def register_configs() -> None:
    """Schemas and resolvers, once per process (later calls change nothing)."""
    from hydra.core.config_store import ConfigStore

    from resnet_exp.hydra_glue.internals import allow_numeric_group_options

    allow_numeric_group_options()
    register_resolvers()
    cs = ConfigStore.instance()
    cs.store(name="schema", node=config.Config)
    cs.store(name="schema_model", node=config.ModelConfig)
    cs.store(name="schema_data", node=config.DataConfig)
    cs.store(name="schema_optimizer_sgd", node=config.SGDConfig)
    cs.store(name="schema_optimizer_adam", node=config.AdamConfig)
    cs.store(name="schema_scheduler_constant", node=config.ConstantScheduleConfig)
    cs.store(name="schema_scheduler_multistep", node=config.MultiStepScheduleConfig)
    cs.store(name="schema_scheduler_cosine", node=config.CosineScheduleConfig)
    cs.store(name="schema_trainer", node=config.TrainerConfig)
    cs.store(name="schema_logger", node=config.LoggerConfig)


def resolvers() -> dict[str, Callable[..., Any]]:
    """Each ``${resnet_exp.<name>:...}`` of ``conf/`` and the function behind it."""
    from resnet_exp.data.facts import dataset_fact
    from resnet_exp.hydra_glue.resolvers import local_jobs
    from resnet_exp.hydra_glue.run_dir import fresh_dir
    from resnet_exp.hydra_glue.sweep_dirs import job_dirname
    from resnet_exp.tracking.identity import MACHINE_KEYS

    return {
        "resnet_exp.dataset": dataset_fact,  # data.* facts from data.name (config.py)
        "resnet_exp.fresh_dir": fresh_dir,  # conf/config.yaml's hydra.run.dir
        "resnet_exp.job_dirname": lambda task, _root_: job_dirname(task, _root_),  # sweep.subdir
        "resnet_exp.machine_keys": lambda: list(MACHINE_KEYS),  # override_dirname's exclude_keys
        "resnet_exp.local_jobs": local_jobs,  # conf/hydra/launcher/joblib.yaml's n_jobs
    }


def register_resolvers() -> None:
    """Our resolvers (idempotent)."""
    from omegaconf import OmegaConf

    # conf/hydra/launcher/joblib.yaml shares its name with the plugin's schema on purpose (so that
    # `hydra/launcher=joblib` is ours, still type-checked); Hydra warns about that pairing.
    warnings.filterwarnings(
        "ignore", message=r"(?s).*'hydra/launcher/joblib' is validated against ConfigStore schema"
    )
    for name, function in resolvers().items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)
