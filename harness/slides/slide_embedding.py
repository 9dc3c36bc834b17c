"""Slide features: tile every slide, embed its tiles, cache (features, coords) per slide.

One DataLoader runs over the tiles of all slides not yet cached, so worker processes (which
open each slide with OpenSlide and call read_region) keep the encoder fed across slide
boundaries; each slide's features stream to its own cache entry (512-tile shards) as they
arrive, so memory stays flat whatever the slide count. A slide that cannot be opened, has no
mpp, has no tissue, or fails while its tiles are read is reported by name and left out; the
others go on.

Under torchrun (WORLD_SIZE > 1) each rank embeds the slides whose index % world_size is its
rank, so every slide lands in the shared cache exactly once; after a barrier all ranks read
the whole set (and rank 0 evaluates).
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock
from torch.utils.data import DataLoader, Dataset

from harness.atomic_write import save_npy_atomic
from harness.embedding_cache import EmbeddingCache
from harness.tile_embedding import DevicePrefetcher, ExtractOptions, device_input, on_cuda
from harness.process_group import barrier, rank_and_world
from harness.progress import progress_bar
from harness.registry import TilingSpec
from harness.slides.tiling import SlideError, SlideTiling, open_slide, plan_tiles
from harness.sources.base import digest


@dataclass
class SlideFeatures:
    features: list[np.ndarray]  # per slide kept: (n_tiles, dim)
    coords: list[np.ndarray]  # per slide kept: (n_tiles, 2) level-0 (x, y)
    kept: list[int]  # index of each kept slide in the dataset's slide list
    failed: dict[str, str] = field(default_factory=dict)  # slide path -> reason
    items_per_s: float | None = None  # tiles/s of the embedding loop, when computed in this run
    slides_per_min: float | None = None  # slides tiled + embedded per minute, when computed in this run


def slide_fingerprint(path: Path, tiling: TilingSpec) -> str:
    """Changes when the file or the tiling changes (size and mtime, not a hash of gigabytes)."""
    stat = Path(path).stat()
    return digest({"path": str(Path(path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                   "tiling": tiling.model_dump()})


class SlideTiles(Dataset):
    """(slide number, tile tensor, ok) for every tile of the given slides, slide after slide."""

    def __init__(self, tilings: list[SlideTiling], transform):
        self.tilings = tilings
        self.transform = transform
        self.index = np.concatenate([np.stack([np.full(len(t.coords), s), np.arange(len(t.coords))], 1)
                                     for s, t in enumerate(tilings)]) if tilings else np.zeros((0, 2), int)
        self._open: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int):
        s, t = (int(v) for v in self.index[i])
        tiling = self.tilings[s]
        try:
            x, y = tiling.coords[t]
            region = self._handle(s).read_region((int(x), int(y)), tiling.level, (tiling.read_size, tiling.read_size))
            return s, self.transform.prepare(region.convert("RGB")), True
        except Exception:  # noqa: BLE001 - a corrupt region: the slide is reported, the others go on
            size = self.transform.input_size
            return s, torch.zeros((3, size, size), dtype=torch.uint8), False

    def _handle(self, s: int):
        """The open slide s (tiles come slide after slide: one slide open at a time)."""
        if s not in self._open:
            for old in self._open.values():
                old.close()
            self._open = {s: open_slide(self.tilings[s].path)}
        return self._open[s]

    def __getstate__(self):
        return {**self.__dict__, "_open": {}}


def embed_slides(encoder, paths: list[Path], tiling: TilingSpec, cache: EmbeddingCache,
                 options: ExtractOptions, label: str) -> SlideFeatures:
    identity = f"{encoder.cache_identity()}|{options.precision}"
    keys = []
    failed: dict[str, str] = {}
    for path in paths:
        try:
            keys.append(cache.key(identity, slide_fingerprint(path, tiling), "slide"))
        except OSError as error:
            keys.append(None)
            failed[str(path)] = f"cannot open: {error.strerror or error}"
    rank, world = rank_and_world()
    mine = [i for i, key in enumerate(keys) if key and i % world == rank]
    todo = [i for i in mine if cache.load(keys[i]) is None]
    rate = per_min = None
    if todo:
        # a second run over the same slides waits here, then finds them cached (as the tile path does)
        with FileLock(str(_mkdir(cache.root) / f"slides-{digest(sorted(keys[i] for i in mine))}.lock")):
            todo = [i for i in todo if cache.load(keys[i]) is None]
            started = time.perf_counter()
            rate = _extract(encoder, [paths[i] for i in todo], [keys[i] for i in todo], tiling, cache, options,
                            label, failed)
            per_min = 60 * len(todo) / (time.perf_counter() - started) if rate else None
    barrier()
    features, coords, kept = [], [], []
    for i, (path, key) in enumerate(zip(paths, keys)):
        entry = cache.load(key) if key else None
        if entry is None:
            failed.setdefault(str(path), _failure_note(cache, key) or "not embedded (see the run's log)")
            continue
        features.append(np.asarray(entry.embeddings))
        coords.append(np.load(cache.folder(key) / "coords.npy"))
        kept.append(i)
    return SlideFeatures(features, coords, kept, failed, rate, round(per_min, 2) if per_min else None)


def _extract(encoder, paths, keys, tiling, cache, options, label, failed) -> float | None:
    """Tile and embed `paths` (not cached yet); failures are recorded in `failed` and on disk."""
    if not paths:
        return None
    planned, planned_keys = [], []
    with progress_bar(f"tiling {label}", len(paths), unit="slides") as advance:
        for path, key in zip(paths, keys):
            try:
                planned.append(plan_tiles(path, tiling))
                planned_keys.append(key)
            except SlideError as error:
                failed[str(path)] = str(error)
                _record_failure(cache, key, str(error))
            advance(1)
    dataset = SlideTiles(planned, encoder.transform)
    if len(dataset) == 0:
        return None
    loader = DataLoader(dataset, batch_size=options.batch_size, num_workers=options.num_workers,
                        pin_memory=on_cuda(options.device), prefetch_factor=4 if options.num_workers else None)
    device = torch.device(options.device)
    module = encoder.module.to(memory_format=torch.channels_last) if device.type == "cuda" else encoder.module
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if options.precision == "bf16" else nullcontext()
    writers: dict[int, object] = {}
    seen: dict[int, int] = {}
    broken: set[int] = set()
    started = time.perf_counter()
    with progress_bar(f"embedding {label} with {encoder.info.name}", len(dataset), unit="tiles") as advance, \
            torch.inference_mode(), autocast:
        for slide_ids, batch, ok in DevicePrefetcher(loader, device, images_at=1):
            out = module(device_input(encoder, batch)).float().cpu().numpy()
            for s in np.unique(slide_ids.numpy()):
                rows = slide_ids.numpy() == s
                s = int(s)
                if s in broken:
                    continue
                if not ok[rows].all():
                    broken.add(s)
                    failed[planned[s].path] = "cannot read a tile region (corrupt file?)"
                    _record_failure(cache, planned_keys[s], failed[planned[s].path])
                    continue
                if s not in writers:
                    writers[s], seen[s] = cache.writer(planned_keys[s], len(planned[s].coords)), 0
                new = out[rows][max(0, writers[s].start - seen[s]):]  # a resumed slide skips finished shards
                seen[s] += int(rows.sum())
                if len(new):
                    writers[s].add(new, f"{encoder.info.name} on {Path(planned[s].path).name}")
                if seen[s] == len(planned[s].coords):
                    _finish(cache, planned_keys[s], writers.pop(s), planned[s], encoder)
            advance(len(batch))
    elapsed = time.perf_counter() - started
    return round(len(dataset) / elapsed, 2) if elapsed > 0 else None


def _finish(cache: EmbeddingCache, key: str, writer, tiling: SlideTiling, encoder) -> None:
    save_npy_atomic(cache.folder(key) / "coords.npy", tiling.coords)
    writer.finish({"model": encoder.info.name, "slide": tiling.path, "level": tiling.level,
                   "read_size": tiling.read_size, "mpp": tiling.mpp, "rank": rank_and_world()[0]})


def _record_failure(cache: EmbeddingCache, key: str | None, reason: str) -> None:
    """Other ranks (and the report) learn why a slide has no features."""
    if key:
        folder = cache.folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "failed.txt").write_text(reason)


def _failure_note(cache: EmbeddingCache, key: str | None) -> str | None:
    path = cache.folder(key) / "failed.txt" if key else None
    return path.read_text() if path and path.exists() else None


def slide_features(encoder, source, paths: list[Path], tiling: TilingSpec, cache: EmbeddingCache,
                   options: ExtractOptions, fingerprint: str) -> SlideFeatures:
    """Every slide's tile features: a network embeds the tiles of `tiling` (cached per slide); an
    instrument returns the generator's truth for each tile of the dataset's own grid."""
    if encoder.reads_pixels:
        return embed_slides(encoder, paths, tiling, cache, options, source.name)
    return instrument_slides(encoder, source, paths, fingerprint)


# Instruments' tilings, by slide fingerprint (file and tiling settings), kept for the process: an
# instrument has no embedding cache entry to hold them, and a run scores each slide dataset for
# several tasks and models (the instruments' run of every task planned each slide four times).
_TILINGS: dict[str, SlideTiling] = {}
_MOST_TILINGS = 50_000


def instrument_tiling(path: Path, tiling: TilingSpec) -> SlideTiling:
    """plan_tiles(path, tiling), once per process while the file and the settings are unchanged."""
    try:
        key = slide_fingerprint(path, tiling)
    except OSError:  # missing or unreadable: plan_tiles says so in its own words (SlideError)
        return plan_tiles(path, tiling)
    if key not in _TILINGS:
        if len(_TILINGS) >= _MOST_TILINGS:
            _TILINGS.clear()
        planned = plan_tiles(path, tiling)
        planned.coords.setflags(write=False)  # shared by every later call: read, never written
        _TILINGS[key] = planned
    return _TILINGS[key]


def instrument_slides(encoder, source, paths: list[Path], fingerprint: str) -> SlideFeatures:
    """Instrument models on slides: the tiling is real, the features are the instrument's (which
    raises NotApplicable on slides without latents)."""
    features, coords, kept, failed = [], [], [], {}
    for i, path in enumerate(paths):
        try:
            tiling = instrument_tiling(path, source.tiling)
        except SlideError as error:
            failed[str(path)] = str(error)
            continue
        latents = source.tile_latents(path, tiling.coords)
        features.append(encoder.embed(len(tiling.coords), latents, item_key=f"{fingerprint}:{Path(path).name}"))
        coords.append(tiling.coords)
        kept.append(i)
    return SlideFeatures(features, coords, kept, failed)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
