"""Pyramidal TIFF slides written for tests: resolution tags rewritten, or a blank (tissue-free) slide."""

from pathlib import Path

import numpy as np


def with_resolution(source: Path, target: Path, mpp: float) -> Path:
    """The same pyramid (pixels, levels) with other resolution tags: level i says mpp * 2**i um/px."""
    import tifffile

    with tifffile.TiffFile(source) as tif:
        levels = [page.asarray() for page in tif.pages]
    with tifffile.TiffWriter(target) as out:
        for i, image in enumerate(levels):
            out.write(image, tile=(128, 128), photometric="rgb", subfiletype=1 if i else 0, metadata=None,
                      resolution=(1e4 / (mpp * 2**i),) * 2, resolutionunit="CENTIMETER")
    return target


def write_blank_slide(path: Path, resolution: bool = True) -> Path:
    import tifffile

    rng = np.random.default_rng(0)
    image = (245 + rng.integers(0, 5, (512, 512, 3))).astype(np.uint8)
    with tifffile.TiffWriter(path) as tif:
        for i in range(3):
            extra = {"resolution": (1e4 / (0.5 * 2**i),) * 2, "resolutionunit": "CENTIMETER"} if resolution else {}
            tif.write(image[:: 2**i, :: 2**i], tile=(128, 128), photometric="rgb", subfiletype=1 if i else 0,
                      metadata=None, **extra)
    return path
