"""User-facing errors: one clear paragraph, no traceback."""


class UserError(Exception):
    """A mistake in the user's input (config value, missing file), reported without a traceback."""
