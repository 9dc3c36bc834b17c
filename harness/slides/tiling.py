"""The tile grid of one slide at a target resolution (default 0.5 um/px, 256 px, no overlap).

The grid lives in level-0 pixels: a tile covers `tile_size * target_mpp / mpp0` level-0 px. It
is read at the finest level no coarser than the target (so a tile is never upsampled) and
resized to `tile_size`. A tile is kept when at least `min_tissue` of it is tissue in the mask.
A grid coarser than its dataset's (`tissue_mpp` set: a model that reads 5x tiles) keeps the
tiles that hold a kept tile of the finer grid, so both cover the same tissue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.registry import TilingSpec
from harness.slides.tissue_mask import tissue_mask

MASK_PX_PER_TILE = 8
# What a slide may claim before it is refused (a file whose tags are wrong would otherwise be
# planned as millions of 0-px tiles and run for hours): level-0 um/px from 0.05 (beyond any
# optical scanner) to 20 (a 0.5x overview), and at most this many grid cells at the target.
MPP_RANGE = (0.05, 20.0)
MAX_GRID_CELLS = 2_000_000
# The image the tissue mask is computed on, at most (8,000 px square; 256 MB as OpenSlide's RGBA). A
# slide without a level that coarse (no pyramid, or too few levels) has its level read in blocks of
# at most MASK_BLOCK_PIXELS, each averaged down: what a file claims never sets the memory a read takes.
MAX_MASK_PIXELS = 64_000_000
MASK_BLOCK_PIXELS = 16_000_000


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

    if not Path(path).is_file():  # missing, or a folder, FIFO or device (opening a FIFO waits for ever)
        raise SlideError("cannot open: " + ("no such file" if not Path(path).exists() else "not a regular file"))
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
    if not MPP_RANGE[0] <= mpp <= MPP_RANGE[1]:
        raise SlideError(f"implausible resolution: {mpp:g} um/px (openslide.mpp-x; a scan has "
                         f"{MPP_RANGE[0]:g} to {MPP_RANGE[1]:g}): fix the file's resolution tags")
    return mpp


def read_geometry(slide, target_mpp: float, tile_size: int) -> tuple[float, int, int]:
    """(tile side in level-0 px, pyramid level to read from, read size at that level) for tiles of
    `tile_size` px at `target_mpp`: the finest level no coarser than the target."""
    mpp = slide_mpp(slide)
    side0 = tile_size * target_mpp / mpp
    finest_ok = [lvl for lvl, d in enumerate(slide.level_downsamples) if d * mpp <= target_mpp * 1.01]
    level = max(finest_ok) if finest_ok else 0
    read_size = int(round(side0 / slide.level_downsamples[level]))
    if read_size < 1:
        raise SlideError(f"a {tile_size} px tile at {target_mpp} um/px is {side0:.3g} px of this slide "
                         f"({mpp:g} um/px): nothing to read")
    return side0, level, read_size


def plan_tiles(path: str | Path, params: TilingSpec) -> SlideTiling:
    slide = open_slide(path)
    try:
        mpp = slide_mpp(slide)
        side0, level, read_size = read_geometry(slide, params.target_mpp, params.tile_size)
        w0, h0 = slide.level_dimensions[0]
        cells = (w0 // side0) * (h0 // side0)
        if cells > MAX_GRID_CELLS:
            raise SlideError(f"{w0} x {h0} px at {mpp:g} um/px makes {cells:,.0f} tiles of {params.tile_size} px at "
                             f"{params.target_mpp} um/px (at most {MAX_GRID_CELLS:,}): check the resolution tags")
        # the tissue rule runs on this grid, or on the finer grid this one must cover (tissue_mpp)
        test_side0 = params.tile_size * (params.tissue_mpp or params.target_mpp) / mpp
        # the mask is read at the coarsest level that still gives a tested tile MASK_PX_PER_TILE px a side
        coarse_ok = [lvl for lvl, d in enumerate(slide.level_downsamples) if test_side0 / d >= MASK_PX_PER_TILE]
        thumb_level = max(coarse_ok) if coarse_ok else 0
        try:
            thumbnail, factor = read_mask_image(slide, thumb_level)
        except Exception as error:  # noqa: BLE001 - a corrupt tile in the pyramid
            raise SlideError(f"cannot read: {type(error).__name__}: {error}") from None
        mask = tissue_mask(thumbnail)
        scale = slide.level_downsamples[thumb_level] * factor
        kept = _tissue_tiles(mask, scale, w0, h0, test_side0, params.min_tissue)
        if params.tissue_mpp is not None:  # this grid's tiles holding the centre of a kept finer tile
            cells = np.unique(np.floor((kept + test_side0 / 2) / side0).astype(np.int64), axis=0)
            inside = (cells[:, 0] + 1) * side0 <= w0 + 1e-6
            inside &= (cells[:, 1] + 1) * side0 <= h0 + 1e-6
            kept = np.round(cells[inside] * side0)
        if not len(kept):
            raise SlideError("no tissue found (the mask keeps no tile): check the slide or lower min_tissue")
        coords = kept.astype(np.int64)
        if params.max_tiles is not None and len(coords) > params.max_tiles:
            coords = coords[np.linspace(0, len(coords) - 1, params.max_tiles).round().astype(int)]
        return SlideTiling(str(path), coords, level, read_size, params.tile_size, mpp)
    finally:
        slide.close()


def read_mask_image(slide, level: int) -> tuple[np.ndarray, int]:
    """The RGB image of pyramid level `level` that the tissue mask is computed on, and the factor it
    was reduced by: 1 (the level as it is) up to MAX_MASK_PIXELS; above, the level is read in blocks
    and each is averaged over factor x factor px, so that the image has at most MAX_MASK_PIXELS."""
    width, height = slide.level_dimensions[level]
    if width * height <= MAX_MASK_PIXELS:
        return np.asarray(slide.read_region((0, 0), level, (width, height)).convert("RGB")), 1
    factor = math.ceil(math.sqrt(width * height / MAX_MASK_PIXELS))
    rows, cols = height // factor, width // factor
    image = np.empty((rows, cols, 3), np.uint8)
    side = max(1, math.isqrt(MASK_BLOCK_PIXELS) // factor)  # a block's side, in pixels of the reduced image
    downsample = slide.level_downsamples[level]
    for top in range(0, rows, side):
        for left in range(0, cols, side):
            h, w = min(side, rows - top), min(side, cols - left)
            region = slide.read_region((int(left * factor * downsample), int(top * factor * downsample)), level,
                                       (w * factor, h * factor))
            block = np.asarray(region.convert("RGB"), dtype=np.float32).reshape(h, factor, w, factor, 3)
            image[top:top + h, left:left + w] = np.rint(block.mean(axis=(1, 3)))
    return image, factor


def _tissue_tiles(mask: np.ndarray, scale: float, w0: int, h0: int, side0: float, min_tissue: float) -> np.ndarray:
    """(n, 2) level-0 (x, y) corners of the grid tiles (side `side0`) whose mask covers min_tissue."""
    kept = []
    for y in np.arange(0, h0 - side0 + 1, side0):
        for x in np.arange(0, w0 - side0 + 1, side0):
            x0, y0 = int(x / scale), int(y / scale)
            x1, y1 = max(int((x + side0) / scale), x0 + 1), max(int((y + side0) / scale), y0 + 1)
            if mask[y0:y1, x0:x1].mean() >= min_tissue:
                kept.append((int(round(x)), int(round(y))))
    return np.array(kept, dtype=np.float64).reshape(-1, 2)
