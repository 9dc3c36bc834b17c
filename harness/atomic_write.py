"""Atomic file writes: a temp file in the same folder, fsync, then rename over the target.

A reader never sees half a file, and an interrupted or failed write (full disk) leaves the
previous version untouched. A full disk becomes one line naming the file.
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from harness.errors import HarnessError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by their owner only; a finished file gets the mode any other
# file written here would get (0666 less the umask), so a shared results folder stays readable
FILE_MODE = 0o666 & ~_umask()


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temp path to write; on success it replaces `target`, on failure it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, target)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        if error.errno == errno.ENOSPC:
            raise HarnessError(
                f"{target}: disk full while writing; free space or point --cache-dir/--output elsewhere "
                "(nothing already written was lost)"
            ) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(target: Path, payload: Any) -> None:
    write_text_atomic(target, json_text(payload))


def json_text(payload: Any) -> str:
    """Standard JSON (RFC 8259) of `payload`: a value that is not a finite number (an AUROC on a
    split of one class is NaN) is written null, as JavaScript writes it; json.dumps would write the
    bare NaN or Infinity that jq, browsers and other JSON readers refuse."""
    return json.dumps(_finite(payload), indent=2, sort_keys=False, allow_nan=False) + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def save_npy_atomic(target: Path, array: np.ndarray) -> None:
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array)


def write_parquet_atomic(target: Path, frame) -> None:
    """A pandas DataFrame as parquet (pyarrow), atomically."""
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False)
