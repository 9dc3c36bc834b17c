"""The exception the CLI turns into a one-line message (no traceback), and the one a model raises
for a dataset it cannot embed (the task is then skipped, with the reason)."""


class HarnessError(Exception):
    """A problem the user can fix: the message names the file/key/model and what to do."""


class NotApplicable(Exception):
    """The model cannot embed this dataset (recorded as skipped, with this reason)."""
