"""Embeddings computed once per (weights, transform, dataset fingerprint, split), reused by every
task and every later run.

Layout under <cache>/embeddings/<key>/:
  shards/00000.npy ...   written while extracting, one per `shard_size` items (atomic each)
  embeddings.npy         the finished (n, dim) float32 array, read memory-mapped; dense features
                         (segmentation) are (n, channels, h, w) float16, the same way
  meta.json              written last: its presence means the entry is complete
An interrupted extraction leaves finished shards; the next run resumes after them. An entry that
cannot be read back (a file truncated or overwritten outside the harness, a full disk's leftovers)
is named in a warning, marked unfinished and computed again, instead of failing every later run.
A file lock keeps two processes from extracting the same entry at once. Memory stays bounded whatever the
entry's size: the writer holds at most one shard, and the finished array is assembled shard by
shard into a memory-mapped file, never in memory as a whole.
"""

from __future__ import annotations

import hashlib
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from filelock import FileLock

from harness.atomic_write import save_npy_atomic, write_json_atomic
from harness.bounded_read import read_json
from harness.errors import HarnessError, one_line
from harness.terminal import console
from harness.timestamps import utc_timestamp

CACHE_FORMAT = 1
DEFAULT_SHARD_SIZE = 512
MAX_META_BYTES = 1_000_000  # an entry's meta.json is a few hundred bytes


@dataclass
class CachedEmbeddings:
    embeddings: np.ndarray  # memory-mapped (n, dim)
    meta: dict[str, Any]


class EmbeddingCache:
    def __init__(self, cache_dir: Path, shard_size: int = DEFAULT_SHARD_SIZE, root: Path | None = None):
        self.root = Path(root) if root is not None else Path(cache_dir) / "embeddings"
        self.shard_size = shard_size

    @classmethod
    def of(cls, context) -> "EmbeddingCache":
        """The cache a run's DataContext names: <cache_dir>/embeddings unless it sets embeddings_dir."""
        return cls(context.cache_dir, root=context.embeddings_dir)

    @staticmethod
    def key(encoder_identity: str, dataset_fingerprint: str, split: str) -> str:
        payload = f"format{CACHE_FORMAT}|{encoder_identity}|{dataset_fingerprint}|{split}"
        return hashlib.sha256(payload.encode()).hexdigest()[:32]

    def folder(self, key: str) -> Path:
        return self.root / key

    def load(self, key: str) -> CachedEmbeddings | None:
        """The finished entry, or None: not finished, or not readable back as one (then a warning names
        it and its meta.json is removed, so that the caller computes it again in its place)."""
        folder = self.folder(key)
        if not (folder / "meta.json").exists():
            return None
        try:
            return _read_entry(folder)
        except (OSError, ValueError, EOFError) as error:
            reason = one_line(error)[:200]
            console.print(f"[yellow]warning[/yellow] {folder}: a cached entry that cannot be read ({reason}); "
                          "computing it again")
            _mark_unfinished(folder)
            return None

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        folder = self.folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder / ".lock")):
            yield

    def writer(self, key: str, n_items: int, dtype: type = np.float32, shard_size: int | None = None) -> "ShardWriter":
        return ShardWriter(self.folder(key), n_items, shard_size or self.shard_size, dtype)


def _mark_unfinished(folder: Path) -> None:
    """Remove an entry's meta.json (whatever stands under that name), so that it is computed again."""
    meta = folder / "meta.json"
    try:
        if meta.is_dir() and not meta.is_symlink():
            shutil.rmtree(meta)
        else:
            meta.unlink(missing_ok=True)
    except OSError as error:
        raise HarnessError(f"{folder}: a cached entry that cannot be read, nor marked unfinished "
                           f"({error.strerror or error}); remove that folder and run again") from None


def _read_entry(folder: Path) -> CachedEmbeddings:
    """A finished entry, checked to be what its meta.json says: ValueError (or OSError) otherwise.
    The arrays are memory-mapped: a file shorter than its header says is refused here, not read."""
    meta = _named("meta.json", lambda: read_json(folder / "meta.json", MAX_META_BYTES, "cache entry's meta.json"))
    if not isinstance(meta, dict) or not isinstance(meta.get("n_items"), int):
        raise ValueError("meta.json does not give n_items")
    embeddings = _named("embeddings.npy", lambda: np.load(folder / "embeddings.npy", mmap_mode="r"))
    if embeddings.ndim < 2 or embeddings.shape[0] != meta["n_items"] or embeddings.shape[1] != meta.get("dim"):
        raise ValueError(f"embeddings.npy is {embeddings.shape}, meta.json says {meta['n_items']} items of "
                         f"dim {meta.get('dim')}")
    if (folder / "coords.npy").exists():  # a slide's tile coordinates, one row per embedding
        coords = _named("coords.npy", lambda: np.load(folder / "coords.npy", mmap_mode="r"))
        if coords.shape[:1] != embeddings.shape[:1]:
            raise ValueError(f"coords.npy has {coords.shape[:1]} rows for {embeddings.shape[0]} embeddings")
    return CachedEmbeddings(embeddings, meta)


def _named(name: str, read):
    """read(), its error prefixed with the file's name (numpy's and json's name none)."""
    try:
        return read()
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"{name}: {one_line(error)}") from None


class ShardWriter:
    """Receives embeddings in item order from `start` on; resumes after finished shards."""

    def __init__(self, folder: Path, n_items: int, shard_size: int, dtype: type = np.float32):
        self.folder = folder
        self.dtype = np.dtype(dtype)
        self.shards = folder / "shards"
        self.n_items = n_items
        self.shard_size = shard_size
        self.shards.mkdir(parents=True, exist_ok=True)
        self._next_shard, self.start = self._finished()
        self._buffer: list[np.ndarray] = []
        self._buffered = 0
        self._received = self.start

    @property
    def received(self) -> int:
        """Items received so far, counting those finished before a resume."""
        return self._received

    def _expected_rows(self, shard: int) -> int:
        return min(self.shard_size, self.n_items - shard * self.shard_size)

    def _finished(self) -> tuple[int, int]:
        """(complete shards, items in them) at the start: the leading run of shards of the right
        length (counted, not derived from the items, so a short last shard counts too)."""
        shards = items = 0
        for shard in range((self.n_items + self.shard_size - 1) // self.shard_size):
            path = self.shards / f"{shard:05d}.npy"
            try:
                rows = np.load(path, mmap_mode="r").shape[0]
            except (OSError, ValueError):
                break
            if rows != self._expected_rows(shard):
                break
            shards, items = shards + 1, items + rows
        return shards, items

    def add(self, embeddings: np.ndarray, what: str = "") -> None:
        embeddings = np.asarray(embeddings, dtype=self.dtype)
        if not np.isfinite(embeddings).all():
            raise HarnessError(
                f"{what or 'the model'} produced NaN or infinite embeddings (items from {self._received}): "
                "the checkpoint is broken or its card has the wrong mean/std or input size"
            )
        self._received += len(embeddings)
        self._buffer.append(embeddings)
        self._buffered += len(embeddings)
        while self._buffered >= self._expected_rows(self._next_shard) > 0:
            self._flush_shard()

    def _flush_shard(self) -> None:
        rows = self._expected_rows(self._next_shard)
        joined = np.concatenate(self._buffer)
        save_npy_atomic(self.shards / f"{self._next_shard:05d}.npy", joined[:rows])
        rest = joined[rows:]
        self._buffer = [rest] if len(rest) else []
        self._buffered = len(rest)
        self._next_shard += 1

    def finish(self, meta: dict[str, Any]) -> CachedEmbeddings:
        n_shards = (self.n_items + self.shard_size - 1) // self.shard_size
        if self._next_shard != n_shards or self._buffered:
            raise RuntimeError(f"extraction ended early: {self._next_shard}/{n_shards} shards")
        shape = self._assemble(n_shards, meta)
        full_meta = {"format": CACHE_FORMAT, "n_items": self.n_items, "dim": int(shape[1]),
                     "created": utc_timestamp(), **meta}
        write_json_atomic(self.folder / "meta.json", full_meta)
        shutil.rmtree(self.shards, ignore_errors=True)
        return CachedEmbeddings(np.load(self.folder / "embeddings.npy", mmap_mode="r"), full_meta)

    def _assemble(self, n_shards: int, meta: dict[str, Any]) -> tuple[int, ...]:
        """The shards into embeddings.npy (atomically), one shard in memory at a time."""
        from numpy.lib.format import open_memmap

        from harness.atomic_write import atomic_path

        if n_shards == 0:
            shape = (0, meta.get("embed_dim", 0))
            save_npy_atomic(self.folder / "embeddings.npy", np.zeros(shape, self.dtype))
            return shape
        first = np.load(self.shards / "00000.npy", mmap_mode="r")
        shape = (self.n_items, *first.shape[1:])
        needed = int(np.prod(shape)) * first.dtype.itemsize
        free = shutil.disk_usage(self.folder).free
        if needed > free:  # a memory-mapped write on a full disk would die with SIGBUS, not an error
            raise HarnessError(f"{self.folder}: the embeddings need {needed / 1e9:.2f} GB and {free / 1e9:.2f} GB "
                               "are free there; free space or point --cache-dir elsewhere (the shards are kept)")
        with atomic_path(self.folder / "embeddings.npy") as tmp:
            out = open_memmap(tmp, mode="w+", dtype=first.dtype, shape=shape)
            row = 0
            for i in range(n_shards):
                part = np.load(self.shards / f"{i:05d}.npy", mmap_mode="r")
                out[row : row + len(part)] = part
                row += len(part)
            out.flush()
            del out
        return shape
