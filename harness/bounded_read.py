"""Reading a file someone else wrote (a request, a result, a report, a dataset's image): only a
regular file, and a request or result only up to its bound. A FIFO or a device under a file's name
would otherwise block the reader for ever or feed it without end; the file is opened without
blocking and checked on its descriptor, so a swap between a check and the open cannot get past it."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO


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
