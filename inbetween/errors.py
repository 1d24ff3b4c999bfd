"""The one exception type for mistakes a user can fix.

Raise :class:`InbetweenError` with a message that names the problem and says how to
fix it. The command line prints the message alone (no traceback) and exits with
status 2; anything else that escapes is a bug and keeps its traceback.
"""


class InbetweenError(Exception):
    """A problem with the user's input or configuration, explained in plain words."""
