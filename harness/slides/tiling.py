"""The tile grid of one slide at a target resolution (default 0.5 um/px, 256 px, no overlap).

The grid lives in level-0 pixels: a tile covers `tile_size * target_mpp / mpp0` level-0 px. It
is read at the finest level no coarser than the target (so a tile is never upsampled) and
resized to `tile_size`. A tile is kept when at least `min_tissue` of it is tissue in the mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.registry import TilingSpec
from harness.slides.tissue_mask import tissue_mask

MASK_PX_PER_TILE = 8


class SlideError(Exception):
    """A slide that cannot be tiled: unreadable, no mpp, or no tissue (recorded, the run goes on)."""


@dataclass(frozen=True)
class SlideTiling:
    path: str
    coords: np.ndarray  # (n, 2) int64 level-0 (x, y) of each tile's top-left corner
    level: int  # pyramid level the tiles are read from
    read_size: int  # tile side in pixels at that level
    tile_size: int  # output side after resizing
    mpp: float  # level-0 um/px


def open_slide(path: str | Path):
    import openslide

    try:
        return openslide.OpenSlide(str(path))
    except (openslide.OpenSlideError, OSError) as error:  # unsupported format, truncated, missing
        raise SlideError(f"cannot open: {type(error).__name__}: {str(error).strip() or 'unreadable file'}") from None


def slide_mpp(slide) -> float:
    import openslide

    value = slide.properties.get(openslide.PROPERTY_NAME_MPP_X)
    try:
        mpp = float(value)
    except (TypeError, ValueError):
        raise SlideError("no resolution (openslide.mpp-x) in the file: rescan or convert with the resolution set") \
            from None
    if not mpp > 0:
        raise SlideError(f"invalid resolution mpp-x={value}")
    return mpp


def plan_tiles(path: str | Path, params: TilingSpec) -> SlideTiling:
    slide = open_slide(path)
    try:
        mpp = slide_mpp(slide)
        side0 = params.tile_size * params.target_mpp / mpp  # tile side in level-0 px
        finest_ok = [lvl for lvl, d in enumerate(slide.level_downsamples) if d * mpp <= params.target_mpp * 1.01]
        level = max(finest_ok) if finest_ok else 0
        read_size = int(round(side0 / slide.level_downsamples[level]))
        # the mask is read at the coarsest level that still gives a tile MASK_PX_PER_TILE mask pixels a side
        coarse_ok = [lvl for lvl, d in enumerate(slide.level_downsamples) if side0 / d >= MASK_PX_PER_TILE]
        thumb_level = max(coarse_ok) if coarse_ok else 0
        width, height = slide.level_dimensions[thumb_level]
        try:
            thumbnail = np.asarray(slide.read_region((0, 0), thumb_level, (width, height)).convert("RGB"))
        except Exception as error:  # noqa: BLE001 - a corrupt tile in the pyramid
            raise SlideError(f"cannot read: {type(error).__name__}: {error}") from None
        mask = tissue_mask(thumbnail)
        scale = slide.level_downsamples[thumb_level]
        w0, h0 = slide.level_dimensions[0]
        xs = np.arange(0, w0 - side0 + 1, side0)
        ys = np.arange(0, h0 - side0 + 1, side0)
        kept = []
        for y in ys:
            for x in xs:
                x0, y0 = int(x / scale), int(y / scale)
                x1, y1 = max(int((x + side0) / scale), x0 + 1), max(int((y + side0) / scale), y0 + 1)
                if mask[y0:y1, x0:x1].mean() >= params.min_tissue:
                    kept.append((int(round(x)), int(round(y))))
        if not kept:
            raise SlideError("no tissue found (the mask keeps no tile): check the slide or lower min_tissue")
        coords = np.array(kept, dtype=np.int64)
        if params.max_tiles is not None and len(coords) > params.max_tiles:
            coords = coords[np.linspace(0, len(coords) - 1, params.max_tiles).round().astype(int)]
        return SlideTiling(str(path), coords, level, read_size, params.tile_size, mpp)
    finally:
        slide.close()
