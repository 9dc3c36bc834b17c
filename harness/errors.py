"""The one exception type the CLI turns into a one-line message (no traceback)."""


class HarnessError(Exception):
    """A problem the user can fix: the message names the file/key/model and what to do."""
