"""What Hydra must know before it composes ``conf/``: :func:`register` puts ``config.py``'s
dataclasses into the ConfigStore (root-level names, so ``--help`` lists only the groups a user
chooses), binds every ``${resnet_exp.*:...}`` resolver, and registers our plugins by hand
(Hydra's scan of ``hydra_plugins`` misses an editable install)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.utils import get_class, get_method
from omegaconf import OmegaConf

from resnet_exp import config
from resnet_exp.data.facts import dataset_fact
from resnet_exp.hydra_glue.internals import allow_numeric_group_options
from resnet_exp.hydra_glue.launchers import (
    LOCAL_JOBS,
    local_jobs,
    scale_extra_installed,
    tune_extra_installed,
)
from resnet_exp.tracking.identity import MACHINE_KEYS

#: root-level ConfigStore name -> schema (conf/ pulls each in through its defaults lists)
SCHEMAS = {
    "schema": config.Config, "schema_model": config.ModelConfig, "schema_data": config.DataConfig,
    "schema_optimizer_sgd": config.SGDConfig, "schema_optimizer_adam": config.AdamConfig,
    "schema_scheduler_constant": config.ConstantScheduleConfig,
    "schema_scheduler_multistep": config.MultiStepScheduleConfig,
    "schema_scheduler_cosine": config.CosineScheduleConfig, "schema_trainer": config.TrainerConfig,
    "schema_logger": config.LoggerConfig,
}  # fmt: skip
#: the folder resolvers, named by path like the plugins below: folders.py reads a sweep's jobs
#: through command -> compose, which registers through this module
_FOLDERS = "resnet_exp.hydra_glue.folders."
#: each ``${resnet_exp.<name>:...}`` of ``conf/`` and the function behind it
RESOLVERS: dict[str, Callable[..., Any]] = {
    "resnet_exp.dataset": dataset_fact,  # data.* facts from data.name (config.py)
    "resnet_exp.fresh_dir": lambda path: get_method(_FOLDERS + "fresh_dir")(path),  # run.dir
    "resnet_exp.job_dirname": (  # conf/config.yaml's hydra.sweep.subdir
        lambda task, _root_: get_method(_FOLDERS + "job_dirname")(task, _root_)
    ),
    "resnet_exp.machine_keys": lambda: list(MACHINE_KEYS),  # override_dirname's exclude_keys
    LOCAL_JOBS: local_jobs,  # conf/hydra/launcher/joblib.yaml's n_jobs
}
_PLUGINS = "hydra_plugins.resnet_exp_launcher."
#: our plugins: (ConfigStore group, name, its config dataclass - whose ``_target_`` is the plugin -
#: named by path as Hydra names plugins, so that no plugin imported here imports the glue back;
#: the extra it needs). Without the scale extra hydra/launcher=slurm is refused up front
#: (preflight.py); without the tune extra the optuna schema composes and the same check refuses it.
PLUGINS = [
    ("hydra/sweeper", "resnet_exp_sweeper", _PLUGINS + "_sweeper.SweeperConf", None),
    ("hydra/sweeper", "resnet_exp_optuna", _PLUGINS + "_sweeper.OptunaConf", "tune"),
    ("hydra/launcher", "resnet_exp_slurm", _PLUGINS + "_slurm.SlurmConf", "scale"),
]
_registered: list[bool] = []


def register() -> None:
    """Schemas, resolvers and plugins, once per process (later calls change nothing)."""
    # conf/hydra/launcher/joblib.yaml shares its name with the plugin's schema on purpose (so that
    # `hydra/launcher=joblib` is ours, still type-checked); Hydra warns about that pairing. (Every
    # call: a caller's catch_warnings may have dropped the filter.)
    warnings.filterwarnings(
        "ignore", message=r"(?s).*'hydra/launcher/joblib' is validated against ConfigStore schema"
    )
    if _registered:
        return
    _registered.append(True)
    allow_numeric_group_options()
    for name, function in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)
    store = ConfigStore.instance()
    for name, schema in SCHEMAS.items():
        store.store(name=name, node=schema)
    plugins = Plugins.instance()
    for group, name, conf_path, extra in PLUGINS:
        if extra == "scale" and not scale_extra_installed():
            continue
        conf = get_class(conf_path)
        store.store(group=group, name=name, node=conf)
        if extra != "tune" or tune_extra_installed():
            plugins.register(get_class(conf._target_))


class RegisteredTask:
    """The task function as launchers hand it to their workers: unpickled in a joblib worker or a
    SLURM job, it registers our resolvers and the numeric-option patch there first, before the
    launcher composes the job's config (registration happens at each process's entry, never at
    import)."""

    def __init__(self, task: Callable[..., Any]) -> None:
        self.task = task

    def __call__(self, cfg: Any) -> Any:
        return self.task(cfg)

    def __getstate__(self) -> dict[str, Any]:
        return {"task": self.task}

    def __setstate__(self, state: dict[str, Any]) -> None:
        register()
        self.task = state["task"]
