"""User-facing errors: one clear paragraph, no traceback."""

import errno
import sys
from typing import NoReturn

EXIT_USER_ERROR = 2  # the exit status of every user error

# The OS limits a run's files can meet, in the words a user acts on. A user error (free space,
# raise a ulimit, pick another folder), said in one paragraph by the checkpoint writer and
# failures.py, never a traceback.
OS_LIMITS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file would exceed the largest file size allowed (file system or ulimit -f)",
    errno.ENAMETOOLONG: "a file name is longer than the file system allows",
    errno.EMFILE: "this process has as many files open as ulimit -n allows",
    errno.ENFILE: "the system has as many files open as it allows",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "the operation is not permitted",
}
DISK_ERRNOS = frozenset(OS_LIMITS)


def os_limit(error: OSError) -> str:
    """``error`` in words, with the system's: "the disk is full (ENOSPC: No space left...)"."""
    name = errno.errorcode.get(error.errno, error.errno)
    return f"{OS_LIMITS.get(error.errno, 'the system refused')} ({name}: {error.strerror})"


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
