"""Reading a file someone else wrote (a request, a result, a report): only a regular file, and at
most a given number of bytes. A FIFO or a device under a file's name would otherwise block the
reader for ever or feed it without end; the file is opened without blocking and checked on its
descriptor, so a swap between a check and the open cannot get past it."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def read_regular_file(path: Path, limit: int) -> bytes:
    """At most `limit` + 1 bytes of the regular file at `path` (one past the limit tells a caller
    that the file is larger); OSError when it is not a regular file or cannot be read."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with open(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError(f"{path.name}: not a regular file")
        return handle.read(limit + 1)
