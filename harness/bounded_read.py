"""Reading a file someone else wrote (a request, a result, a report, a dataset's image): only a
regular file, and a request or result only up to its bound. A FIFO or a device under a file's name
would otherwise block the reader for ever or feed it without end; the file is opened without
blocking and checked on its descriptor, so a swap between a check and the open cannot get past it."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO


class NotRegularFile(OSError):
    """A name that holds something other than a regular file."""


def open_regular_file(path: Path) -> BinaryIO:
    """The regular file at `path`, open for reading in binary; NotRegularFile when it is anything
    else (a folder, a FIFO, a device), another OSError when it cannot be opened."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise NotRegularFile(f"{Path(path).name}: not a regular file")
        return open(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def read_regular_file(path: Path, limit: int) -> bytes:
    """At most `limit` + 1 bytes of the regular file at `path` (one past the limit tells a caller
    that the file is larger); OSError when it is not a regular file or cannot be read."""
    with open_regular_file(path) as handle:
        return handle.read(limit + 1)


def read_json(path: Path, limit: int, what: str = "file") -> Any:
    """The JSON of the regular file at `path`, of at most `limit` bytes; ValueError when it is
    larger, not UTF-8 JSON, or nested too deeply to parse (where json raises RecursionError),
    OSError when it is not a regular file or cannot be read. `what` names the file in the first."""
    data = read_regular_file(path, limit)
    if len(data) > limit:
        raise ValueError(f"{path.stat().st_size:,} bytes, more than a {what} may have")
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
