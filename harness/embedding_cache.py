"""Embeddings computed once per (weights, transform, dataset fingerprint, split), reused by every
task and every later run.

Layout under <cache>/embeddings/<key>/:
  shards/00000.npy ...   written while extracting, one per `shard_size` items (atomic each)
  embeddings.npy         the finished (n, dim) float32 array, read memory-mapped
  meta.json              written last: its presence means the entry is complete
An interrupted extraction leaves finished shards; the next run resumes after them. A file lock
keeps two processes from extracting the same entry at once.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from filelock import FileLock

from harness.atomic_write import save_npy_atomic, write_json_atomic
from harness.errors import HarnessError
from harness.timestamps import utc_timestamp

CACHE_FORMAT = 1
DEFAULT_SHARD_SIZE = 512


@dataclass
class CachedEmbeddings:
    embeddings: np.ndarray  # memory-mapped (n, dim)
    meta: dict[str, Any]


class EmbeddingCache:
    def __init__(self, cache_dir: Path, shard_size: int = DEFAULT_SHARD_SIZE):
        self.root = Path(cache_dir) / "embeddings"
        self.shard_size = shard_size

    @staticmethod
    def key(encoder_identity: str, dataset_fingerprint: str, split: str) -> str:
        payload = f"format{CACHE_FORMAT}|{encoder_identity}|{dataset_fingerprint}|{split}"
        return hashlib.sha256(payload.encode()).hexdigest()[:32]

    def folder(self, key: str) -> Path:
        return self.root / key

    def load(self, key: str) -> CachedEmbeddings | None:
        folder = self.folder(key)
        if not (folder / "meta.json").exists():
            return None
        meta = json.loads((folder / "meta.json").read_text())
        return CachedEmbeddings(np.load(folder / "embeddings.npy", mmap_mode="r"), meta)

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        folder = self.folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder / ".lock")):
            yield

    def writer(self, key: str, n_items: int) -> "ShardWriter":
        return ShardWriter(self.folder(key), n_items, self.shard_size)


class ShardWriter:
    """Receives embeddings in item order from `start` on; resumes after finished shards."""

    def __init__(self, folder: Path, n_items: int, shard_size: int):
        self.folder = folder
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
        if not np.isfinite(embeddings).all():
            raise HarnessError(
                f"{what or 'the model'} produced NaN or infinite embeddings (items from {self._received}): "
                "the checkpoint is broken or its card has the wrong mean/std or input size"
            )
        self._received += len(embeddings)
        self._buffer.append(np.asarray(embeddings, dtype=np.float32))
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
        parts = [np.load(self.shards / f"{i:05d}.npy") for i in range(n_shards)]
        embeddings = np.concatenate(parts) if parts else np.zeros((0, meta.get("embed_dim", 0)), np.float32)
        save_npy_atomic(self.folder / "embeddings.npy", embeddings)
        full_meta = {"format": CACHE_FORMAT, "n_items": self.n_items, "dim": int(embeddings.shape[1]),
                     "created": utc_timestamp(), **meta}
        write_json_atomic(self.folder / "meta.json", full_meta)
        shutil.rmtree(self.shards, ignore_errors=True)
        return CachedEmbeddings(np.load(self.folder / "embeddings.npy", mmap_mode="r"), full_meta)
