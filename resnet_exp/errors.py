"""User-facing errors: one clear paragraph, no traceback."""

import errno
import sys
from typing import NoReturn

EXIT_USER_ERROR = 2  # the exit status of every user error

# The file system refused a write: full, over quota, read-only, no permission. A user error (free
# space, pick another folder), said in one paragraph by the checkpoint writer and failures.py.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


class UserError(Exception):
    """A mistake in the user's input (config value, missing file), reported without a traceback."""


def user_error(error: BaseException) -> UserError | None:
    """The UserError behind ``error`` (Hydra wraps errors raised while instantiating)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, UserError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def exit_user_error(message: str) -> NoReturn:
    """One paragraph on stderr, exit 2. A SystemExit, which Hydra and OmegaConf let through
    where they would wrap any other exception (from a resolver, say) in a traceback."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USER_ERROR)
