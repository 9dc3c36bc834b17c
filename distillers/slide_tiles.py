"""Tiles from whole slides as distillation data: feature_kd, multi_teacher and logit_kd on a
slide dataset (wsi, or synthetic slides) train on the tiles of the dataset's grid (tissue mask,
0.5 um/px, 256 px: what slide tasks embed), read lazily with OpenSlide. Teacher targets come
through the slide cache, so a teacher already scored on the dataset costs nothing.

Tiles of one slide are alike, so fidelity is measured on whole held-out slides (one in ten)
when there are ten slides or more, else on one tile in ten.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.distillers.losses import PhiS
from harness.distillers.teachers import TeacherTargets
from harness.errors import HarnessError
from harness.models.card import IMAGENET_MEAN, IMAGENET_STD
from harness.models.loading import LoadOptions, load_encoder
from harness.models.transform import TileTransform
from harness.progress import progress_bar
from harness.slides.slide_embedding import SlideFeatures, SlideTiles, slide_features
from harness.slides.tiling import SlideError, SlideTiling, open_slide, plan_tiles

HELD_OUT_EVERY = 10


class SlideTileImages:
    """Tiles of several slides as one sequence of uint8 (size, size, 3) arrays, read on demand as
    `harness run` reads them (OpenSlide read_region at the tiling's level, bicubic to `size`).
    Items come in any order, so up to MAX_OPEN slides stay open (least recently used closed)."""

    def __init__(self, tilings: list[SlideTiling], size: int | None = None):
        self.tilings = tilings
        self.reader = _RandomAccessTiles(tilings, TileTransform(size or tilings[0].tile_size, IMAGENET_MEAN,
                                                                IMAGENET_STD))
        self.slide_of = self.reader.index[:, 0]

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, i: int) -> np.ndarray:
        slide, tile, ok = self.reader[int(i)]
        if not ok:
            raise HarnessError(f"{self.tilings[slide].path}: cannot read a tile region (corrupt file?): "
                               "drop the slide from the table")
        return tile.permute(1, 2, 0).numpy()


class _RandomAccessTiles(SlideTiles):
    MAX_OPEN = 32

    def _handle(self, s: int):
        if s in self._open:
            self._open[s] = self._open.pop(s)  # most recently used last
        else:
            if len(self._open) >= self.MAX_OPEN:
                self._open.pop(next(iter(self._open))).close()
            self._open[s] = open_slide(self.tilings[s].path)
        return self._open[s]


def held_out_items(slide_of: np.ndarray) -> np.ndarray:
    """Every tenth slide's items when there are ten slides or more, else every tenth item."""
    if len(np.unique(slide_of)) >= HELD_OUT_EVERY:
        return np.flatnonzero(slide_of % HELD_OUT_EVERY == 0)
    return np.arange(0, len(slide_of), HELD_OUT_EVERY)


def slide_tiles(config, source) -> tuple[SlideTileImages, np.ndarray, dict]:
    """The dataset's grid tiles (slides that cannot be tiled are named and left out)."""
    tilings, failed = [], {}
    paths = source.table().paths
    with progress_bar(f"tiling {source.name}", len(paths), unit="slides") as advance:
        for path in paths:
            try:
                tilings.append(plan_tiles(path, source.tiling))
            except SlideError as error:
                failed[str(path)] = str(error)
            advance(1)
    for path, reason in failed.items():
        print(f"slide left out of distillation: {path}: {reason}")
    if not tilings:
        raise HarnessError(f"dataset '{config.dataset}': no slide could be tiled (see the reasons above)")
    images = SlideTileImages(tilings)
    held_out = held_out_items(images.slide_of)
    description = {"dataset": config.dataset, "slides": len(tilings), "tiles": len(images),
                   "train": len(images) - len(held_out), "held_out": len(held_out), "failed_slides": len(failed)}
    return images, held_out, description


def teacher_slide_features(spec, source, paths: list[Path], context, extract) -> tuple[SlideFeatures, int]:
    """A teacher's embedding of every grid tile of these slides (cached per slide), and its size."""
    from harness.embedding_cache import EmbeddingCache

    encoder = load_encoder(spec.model, LoadOptions(random_init=spec.random_init, device=extract.device))
    features = slide_features(encoder, source, paths, source.tiling, EmbeddingCache.of(context), extract,
                              source.fingerprint())
    return features, encoder.info.n_parameters


def slide_teacher_targets(specs, source, images: SlideTileImages, context, extract) -> list[TeacherTargets]:
    """Each teacher's targets for every tile of `images`, in its order, PHI-S standardised."""
    paths = [Path(t.path) for t in images.tilings]
    targets = []
    for spec in specs:
        features, n_parameters = teacher_slide_features(spec, source, paths, context, extract)
        for path, reason in features.failed.items():
            raise HarnessError(f"teacher '{spec.model}' could not embed {path}: {reason}")
        for tiling, coords in zip(images.tilings, features.coords):
            if not np.array_equal(tiling.coords, coords):
                raise HarnessError(f"teacher '{spec.model}' tiled {tiling.path} differently from the distillation "
                                   "grid (slide changed on disk?): clear its cache entry")
        raw = np.concatenate(features.features).astype(np.float32)
        targets.append(TeacherTargets(spec.model, spec.weight, raw, PhiS(raw)(raw), n_parameters))
    return targets
