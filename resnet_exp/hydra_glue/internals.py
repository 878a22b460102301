"""Every use of Hydra's and submitit's private or undocumented API, each function saying why;
``tests/test_hydra_glue.py`` resolves every name of :data:`PRIVATE_API`, so an upgrade that drops
or changes one fails a test, not a user's run.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import hydra.core.utils as hydra_utils
from hydra._internal import defaults_list
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from omegaconf import DictConfig

CHECKED_WITH = {"hydra-core": "1.3.8", "submitit": "1.5.4", "hydra-submitit-launcher": "1.2.0"}
#: Each private name used here -> why (the function that uses it).
PRIVATE_API = {
    "hydra._internal.defaults_list.Overrides.__init__": "allow_numeric_group_options",
    "hydra._internal.core_plugins.basic_sweeper.BasicSweeper.split_arguments": "sweep_batches",
    "hydra.core.utils.datetime": "pin_now",
    "hydra.core.utils.JobReturn._return_value": "job_error",
    "hydra.core.hydra_config.HydraConfig.instance().cfg": "hydra_config_of",
    "submitit.core.core.Job.results": "submitit_hooks",
    "submitit.AutoExecutor.map_array": "submitit_hooks",
    "hydra._internal.core_plugins.basic_launcher.BasicLauncher": "BASIC_LAUNCHER",
}
#: Hydra's default launcher, by the ``_target_`` its config names (launchers.TRAITS)
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
_PATCHED = "_resnet_exp_numeric_options"
_HOOKS = threading.local()  # this thread's (submitted, results) while its launch runs
_INSTALL = threading.Lock()  # patching submitit, swapping Hydra's config: one thread at a time


def allow_numeric_group_options() -> None:
    """Let numeric option names (``model/depth=56``) select config-group options (idempotent).

    Hydra's override grammar reads ``56`` as an int and its defaults list then refuses it ("Config
    group override must be a string or a list. Got int"), so we hand it the option's text as typed.
    """
    original = defaults_list.Overrides.__init__
    if getattr(original, _PATCHED, False):
        return

    def __init__(self: Any, repo: Any, overrides_list: list) -> None:
        for override in overrides_list:
            value = override._value
            if (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and not override.is_sweep_override()
                and repo.group_exists(override.key_or_group)
            ):
                override._value = override.get_value_element_as_str()
        original(self, repo, overrides_list)

    setattr(__init__, _PATCHED, True)
    defaults_list.Overrides.__init__ = __init__


def sweep_batches(
    overrides: list[str], max_batch_size: int | None = None, config_loader: Any = None
) -> list[list[list[str]]]:
    """The batches of jobs Hydra's basic sweeper launches for ``overrides`` (one override list per
    job, in launch order: the cartesian product of every sweep, ``a=1,2 b=x,y`` -> 4 jobs). Its
    ``split_arguments`` is the expansion every Hydra user knows; its class is internal."""
    parsed = OverridesParser.create(config_loader=config_loader).parse_overrides(overrides)
    return [[list(job) for job in b] for b in BasicSweeper.split_arguments(parsed, max_batch_size)]


def split_sweep(overrides: list[str], config_loader: Any = None) -> list[list[str]]:
    """Every job of the sweep, in launch order."""
    return [job for batch in sweep_batches(overrides, None, config_loader) for job in batch]


def pin_now(stamp: datetime) -> None:
    """Make Hydra's ``${now:...}`` resolver read ``stamp`` instead of the clock.

    Every launcher re-registers ``now`` (``hydra.core.utils.setup_globals``) with ``datetime``
    looked up in ``hydra.core.utils``; swapping that name for a subclass survives it.
    """

    class _PinnedDatetime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # noqa: ARG003 - same signature as datetime.now
            return stamp if tz is None else stamp.astimezone(tz)

    hydra_utils.datetime = _PinnedDatetime  # type: ignore[misc]


def job_error(result: JobReturn) -> Any:
    """What a failed job raised, without raising it (``JobReturn.return_value`` re-raises)."""
    return result._return_value


@contextlib.contextmanager
def hydra_config_of(cfg: DictConfig) -> Iterator[None]:
    """Hydra's runtime config set to ``cfg`` for the block (``${hydra:...}`` resolves against it),
    then the previous one put back: Hydra has ``set_config`` but no public way back. One thread
    at a time (the Optuna sweeper's slots launch side by side)."""
    with _INSTALL:
        previous = HydraConfig.instance().cfg
        try:
            HydraConfig.instance().set_config(cfg)
            yield
        finally:
            if previous is not None:
                HydraConfig.instance().cfg = previous


@contextlib.contextmanager
def submitit_hooks(
    submitted: Callable[[list], None], results: Callable[[Any, Callable[[Any], list]], list]
) -> Iterator[None]:
    """While hydra_submitit_launcher's ``launch`` runs (it offers no hook of its own): call
    ``submitted(jobs)`` once the array is submitted (the ids are kept even if the wait is cut
    short), and collect each job with ``results(job, Job.results)`` (a dead job becomes a failed
    job, not an exception that loses every other job's result); per thread (Optuna's slots)."""
    import submitit  # optional: the scale extra
    from submitit.core.core import Job

    with _INSTALL:
        if not hasattr(Job.results, "_resnet_exp"):
            original_map, original_results = submitit.AutoExecutor.map_array, Job.results

            def map_array(executor: Any, fn: Any, *iterables: Any) -> list:
                jobs = original_map(executor, fn, *iterables)
                if getattr(_HOOKS, "on", None):
                    _HOOKS.on[0](jobs)
                return jobs

            def job_results(job: Any) -> list:
                on = getattr(_HOOKS, "on", None)
                return on[1](job, original_results) if on else original_results(job)

            job_results._resnet_exp = True  # type: ignore[attr-defined]
            submitit.AutoExecutor.map_array, Job.results = map_array, job_results
    _HOOKS.on = (submitted, results)
    try:
        yield
    finally:
        _HOOKS.on = None
