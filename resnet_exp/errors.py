"""User-facing errors: one clear paragraph, no traceback."""

import errno

EXIT_USER_ERROR = 2  # the exit status of every user error

# The file system refused a write: full, over quota, read-only, no permission. A user error (free
# space, pick another folder), said in one paragraph by the checkpoint writer and failures.py.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


class UserError(Exception):
    """A mistake in the user's input (config value, missing file), reported without a traceback."""
