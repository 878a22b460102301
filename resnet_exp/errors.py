"""User-facing errors: one clear paragraph, no traceback."""

EXIT_USER_ERROR = 2  # the exit status of every user error


class UserError(Exception):
    """A mistake in the user's input (config value, missing file), reported without a traceback."""
