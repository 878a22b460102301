"""The caches of the libraries we use stay out of the user's home (``logger=none`` writes nothing
outside the run or sweep folder): unless the user set one, each points into a temporary folder
this process (and the workers it starts, which inherit it) use, removed when it exits."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

#: matplotlib's font cache (the report's figures); torch inductor's (``trainer.compile``).
CACHE_VARIABLES = ("MPLCONFIGDIR", "TORCHINDUCTOR_CACHE_DIR")


def keep_private() -> None:
    """Point each unset cache variable into one temporary folder removed at exit."""
    unset = [name for name in CACHE_VARIABLES if not os.environ.get(name)]
    if not unset:
        return
    folder = tempfile.mkdtemp(prefix="resnet_exp-caches-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for name in unset:
        os.environ[name] = os.path.join(folder, name.lower())
