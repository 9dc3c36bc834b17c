"""The exception the CLI turns into a one-line message (no traceback), the one a model raises
for a dataset it cannot embed (the task is then skipped, with the reason), and the plain words for
the first problem of a schema check (a YAML file, a card, a request or a result file); any error's
message as one line."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class HarnessError(Exception):
    """A problem the user can fix: the message names the file/key/model and what to do."""


class NotApplicable(Exception):
    """The model cannot embed this dataset (recorded as skipped, with this reason)."""


def first_problem(error: ValidationError) -> tuple[list[str], str]:
    """Location and plain-words message of the first problem in a pydantic error: every file the
    harness checks against a schema reports it in the same words."""
    first = error.errors()[0]
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key (not in the schema; check its spelling)"
    elif first["type"] == "missing":
        message = "required key is missing"
    elif first["type"] == "value_error":
        message = message.removeprefix("Value error, ")  # our own validators' messages, as written
    return [str(part) for part in first["loc"]], message


def one_line(error: BaseException) -> str:
    """The message of an error as one line. A DataLoader worker wraps the error in a traceback, whose
    last line is the error; any other message leads with what happened and follows with hints (CUDA's
    "device-side assert triggered" is followed by "Compile with TORCH_USE_CUDA_DSA ..."), so its
    first line is kept."""
    text = str(error).strip() or type(error).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()] or [text]
    if "Traceback (most recent call last)" in text:
        return lines[-1].removeprefix("harness.errors.HarnessError: ")
    return lines[0]


def printable(text: str) -> str:
    """Text any page or table can show: the bytes of a file name that are not UTF-8, which Python
    holds as lone surrogates (Streamlit and pyarrow refuse them), as \\udcff escapes."""
    return str(text).encode("utf-8", "backslashreplace").decode("utf-8")
