"""A local checkpoint's weights hashed once per state of the file, not at every run.

Results record the sha256 of a checkpoint's weights, and a rerun compares it with each result's to
reuse them; reading a 1B-parameter model's 4.4 GB for it took about 3 s here at every start, the
whole budget of a rerun that finds every result. The digest is kept in the cache
(`<cache>/weights-sha256/`, one small JSON per file, named by its resolved path) with the file's
size, modification and change times, inode and device, and reused while all five are the same: the
test git's index makes of a file. Rewriting the file, even with its old modification time put back,
moves its change time, and it is hashed again. A cache that cannot be written only costs the time.

Weights split over shards are hashed as one: the sha256 of the list of their files (the index, then
each shard in name order), one `name<TAB>sha256` line each, every file's digest kept as above.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from harness.atomic_write import write_text_atomic


def weights_sha256(path: Path, cache_dir: Path | None) -> str:
    """sha256 of a checkpoint's weights: the file's, or its shards' as one (above); each file's from
    the cache under `cache_dir` where it is as it was when hashed (None: every file read whole)."""
    from harness.models.weight_files import weight_parts

    parts = weight_parts(Path(path))
    if len(parts) == 1:
        return file_sha256(parts[0], cache_dir)
    listing = "".join(f"{part.name}\t{file_sha256(part, cache_dir)}\n" for part in parts)
    return hashlib.sha256(listing.encode()).hexdigest()


def file_sha256(path: Path, cache_dir: Path | None) -> str:
    """sha256 of one file, from the cache where the file is as it was when hashed."""
    if cache_dir is None:
        return sha256_file(path)
    path = Path(path).resolve()
    state = _state(path)
    entry = cache_dir / "weights-sha256" / f"{hashlib.blake2b(str(path).encode(), digest_size=16).hexdigest()}.json"
    try:
        kept = json.loads(entry.read_text())
        if isinstance(kept, dict) and kept.get("state") == state and _is_sha256(kept.get("sha256")):
            return kept["sha256"]
    except (OSError, ValueError):
        pass
    digest = sha256_file(path)
    if _state(path) == state:  # not rewritten while it was read
        try:
            write_text_atomic(entry, json.dumps({"path": str(path), "state": state, "sha256": digest}))
        except OSError:
            pass
    return digest


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _state(path: Path) -> list[int]:
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev]


def _is_sha256(value) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
