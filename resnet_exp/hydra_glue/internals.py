"""Every use of Hydra's private or undocumented internals, in one module.

Each function names the Hydra behaviour it relies on; tests/test_hydra_glue.py pins that behaviour
(one test per function), so a Hydra upgrade that changes it fails a test named after it instead of a
user's run.

- :func:`allow_numeric_group_options` patches
  ``hydra._internal.defaults_list.Overrides.__init__``;
- :func:`split_sweep` calls
  ``hydra._internal.core_plugins.basic_sweeper.BasicSweeper.split_arguments``;
- :func:`pin_now` swaps the ``datetime`` name inside ``hydra.core.utils``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

_PATCHED = "_resnet_exp_numeric_options"


def allow_numeric_group_options() -> None:
    """Let numeric option names (``model/depth=56``) select config-group options (idempotent).

    Hydra's override grammar reads ``56`` as an int and its defaults list then refuses any group
    choice that is not a string ("Config group override must be a string or a list. Got int"). The
    depth group is named by numbers on purpose, so before Hydra builds a defaults list we hand it
    the option's text as typed.
    """
    from hydra._internal import defaults_list

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


def split_sweep(overrides: list[str]) -> list[list[str]]:
    """The jobs Hydra's basic sweeper would launch for ``overrides``: one override list per job,
    in launch order (the cartesian product of every sweep, ``a=1,2 b=x,y`` -> 4 jobs)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    return [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def pin_now(stamp: datetime) -> None:
    """Make Hydra's ``${now:...}`` resolver read ``stamp`` instead of the clock.

    Hydra re-registers ``now`` itself (``hydra.core.utils.setup_globals``, called by every launcher)
    as ``lambda p: datetime.now().strftime(p)`` with ``datetime`` looked up in ``hydra.core.utils``;
    swapping that module's ``datetime`` name for a subclass with a fixed ``now()`` survives the
    re-registration.
    """
    import hydra.core.utils as hydra_utils

    class _PinnedDatetime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # noqa: ARG003 - same signature as datetime.now
            return stamp if tz is None else stamp.astimezone(tz)

    hydra_utils.datetime = _PinnedDatetime  # type: ignore[misc]
