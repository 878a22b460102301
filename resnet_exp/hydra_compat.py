"""Let numeric option names (``model/depth=56``) select config-group options.

Hydra's override grammar reads ``56`` as an int and its defaults list then refuses any group choice
that is not a string ("Config group override must be a string or a list. Got int"). The depth group
is named by numbers on purpose, so before Hydra builds a defaults list we hand it the option's text
as typed.
"""

from __future__ import annotations

from typing import Any

_PATCHED = "_resnet_exp_numeric_options"


def allow_numeric_group_options() -> None:
    """Patch Hydra's defaults-list override reader once per process (idempotent)."""
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
