"""Our libraries' caches stay out of the user's home: unless the user set one, each points into a
temporary folder this process (and the workers it starts) use, removed when it exits."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

#: matplotlib's font cache (the report's figures); torch inductor's (``trainer.compile``).
CACHE_VARIABLES = ("MPLCONFIGDIR", "TORCHINDUCTOR_CACHE_DIR")


def keep_private() -> None:
    unset = [name for name in CACHE_VARIABLES if not os.environ.get(name)]
    if unset:
        folder = tempfile.mkdtemp(prefix="resnet_exp-caches-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        os.environ.update({name: os.path.join(folder, name.lower()) for name in unset})
