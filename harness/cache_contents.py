"""What the harness cache holds, and removing embeddings from it (`harness cache list|prune`).

Embeddings are kept per (weights, transform, dataset, split) so that every later run reuses them
(embedding_cache.py); scoring many large models fills a disk (a ViT-g's float32 embeddings take
6 GB per million tiles). `list` shows each model's entries and their size; `prune` removes the
entries of a model, those older than some days, or unfinished ones (shards of an interrupted
extraction). Only folders named as the cache names its entries are touched, never a link, and
never an entry another process holds the lock of (an extraction in progress).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from harness.bounded_read import read_json

ENTRY = re.compile(r"[0-9a-f]{32}")  # EmbeddingCache.key
SLIDE = "(a slide)"
REMOVING = ".removing-"  # an entry being removed is renamed so first (one a killed prune left stays so)
MAX_META_BYTES = 1024 * 1024


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    bytes: int
    model: str  # as its meta.json names it; "(unfinished)" or "(unreadable)" otherwise
    dataset: str  # a tile dataset's name, or SLIDE for one slide's tiles
    split: str
    created: datetime | None
    complete: bool


def folder_bytes(path: Path) -> int:
    """Bytes of the files under `path`, links not followed."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def embedding_entries(cache_dir: Path) -> list[CacheEntry]:
    """Every entry under <cache_dir>/embeddings, newest first; unfinished ones (no meta.json: an
    interrupted extraction's shards, or an entry a killed prune was removing) too."""
    entries = []
    root = Path(cache_dir) / "embeddings"
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if path.is_symlink() or not path.is_dir() or not ENTRY.fullmatch(path.name.removeprefix(REMOVING)):
            continue
        if path.name.startswith(REMOVING):
            entries.append(CacheEntry(path, folder_bytes(path), "(being removed)", "", "", _modified(path), False))
        else:
            entries.append(_entry(path))
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(entries, key=lambda e: (e.created or oldest, e.path.name), reverse=True)


def _entry(path: Path) -> CacheEntry:
    meta_path = path / "meta.json"
    size = folder_bytes(path)
    if not meta_path.is_file():
        return CacheEntry(path, size, "(unfinished)", "", "", _modified(path), False)
    try:
        meta = read_json(meta_path, MAX_META_BYTES)
        if not isinstance(meta, dict):
            raise ValueError("not an object")
    except (OSError, ValueError):
        return CacheEntry(path, size, "(unreadable)", "", "", _modified(path), True)

    def text(key: str) -> str:
        value = meta.get(key)
        return str(value)[:200] if isinstance(value, (str, int, float)) else ""

    try:
        created = datetime.fromisoformat(text("created").replace("Z", "+00:00"))
        created = created if created.tzinfo else created.replace(tzinfo=timezone.utc)
    except ValueError:
        created = _modified(path)
    dataset = text("dataset") or (SLIDE if "slide" in meta else "")
    return CacheEntry(path, size, text("model") or "(unnamed)", dataset, text("split"), created, True)


def _modified(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
    except OSError:
        return None


def select(entries: list[CacheEntry], model: str | None = None, older_than_days: float | None = None,
           unfinished: bool = False) -> list[CacheEntry]:
    """The entries every given condition holds for (a model's name, its age, unfinished)."""
    now = datetime.now(timezone.utc)
    chosen = []
    for entry in entries:
        if model is not None and entry.model != model:
            continue
        if older_than_days is not None and (entry.created is None
                                            or now - entry.created < timedelta(days=older_than_days)):
            continue
        if unfinished and entry.complete:
            continue
        chosen.append(entry)
    return chosen


def remove(entries: list[CacheEntry]) -> tuple[list[CacheEntry], list[str]]:
    """Delete the entries no other process holds; (removed, one line per entry left and why)."""
    removed, left = [], []
    for entry in entries:
        lock = FileLock(str(entry.path / ".lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            left.append(f"{entry.path}: in use by another process (an extraction); left")
            continue
        try:
            # moved aside first: a reader never finds a half-deleted entry under its key
            doomed = entry.path.with_name(REMOVING + entry.path.name.removeprefix(REMOVING))
            if doomed != entry.path:
                os.replace(entry.path, doomed)
        except OSError as error:
            left.append(f"{entry.path}: could not be removed ({error.strerror or error})")
            continue
        finally:
            lock.release()
        shutil.rmtree(doomed, ignore_errors=True)
        removed.append(entry)
    return removed, left


def other_contents(cache_dir: Path) -> list[tuple[str, int]]:
    """(folder, bytes) of what else the cache holds: generated synthetic data, text embeddings, the
    app's copies of a Hub results dataset."""
    rows = []
    for name in ("synthetic", "text", "board", "data"):
        path = Path(cache_dir) / name
        if path.is_dir() and not path.is_symlink():
            rows.append((name, folder_bytes(path)))
    return rows


def per_model(entries: list[CacheEntry]) -> list[dict]:
    """One row per model, largest first: entries, datasets (slides counted), bytes, newest entry."""
    groups: dict[str, list[CacheEntry]] = {}
    for entry in entries:
        groups.setdefault(entry.model, []).append(entry)
    rows = []
    for model, group in groups.items():
        datasets = sorted({e.dataset for e in group if e.dataset and e.dataset != SLIDE})
        slides = sum(e.dataset == SLIDE for e in group)
        rows.append({"model": model, "entries": len(group), "datasets": datasets + ([f"{slides} slides"] if slides else []),
                     "bytes": sum(e.bytes for e in group),
                     "newest": max((e.created for e in group if e.created), default=None)})
    return sorted(rows, key=lambda row: -row["bytes"])


def size_label(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
