"""Whole-slide pipeline: tile reading throughput against raw read_region, and peak memory.

Prints, from one run on this machine:
  raw read_region   tiles/s of a plain loop: read_region + RGB + resize to the encoder input,
                    on the coordinates the harness chose
  harness pipeline  tiles/s of the harness's tiling (tissue mask + grid) plus its DataLoader
                    reading the same tiles in worker processes (no model), and the ratio
  peak memory       max RSS of a process that embeds 1, 4 and 16 copies of the slide with
                    vit_tiny (features stream to per-slide cache shards, so it should stay flat)

The slide is a 4,096 x 4,096 px pyramid at 0.5 um/px (256 tiles of 256 px), a 4 x 4 mosaic of
a synthetic slide.

Usage: python benchmarks/wsi.py [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from harness.registry import TilingSpec  # noqa: E402
from harness.slides.tiling import open_slide, plan_tiles  # noqa: E402

MEMORY_PROBE = """
import resource, sys
from pathlib import Path
from harness.embedding_cache import EmbeddingCache
from harness.tile_embedding import ExtractOptions
from harness.models.loading import LoadOptions, load_encoder
from harness.registry import TilingSpec
from harness.slides.slide_embedding import embed_slides
paths = [Path(p) for p in sys.argv[2:]]
encoder = load_encoder("timm:vit_tiny_patch16_224", LoadOptions(random_init=True))
done = embed_slides(encoder, paths, TilingSpec(), EmbeddingCache(Path(sys.argv[1])),
                    ExtractOptions(num_workers=2, precision="bf16"), "bench")
print(sum(len(f) for f in done.features), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def big_slide(folder: Path, repeats: int = 4) -> Path:
    """A repeats x repeats mosaic of one 1,024 px synthetic slide (12 tissue fields), as a 4-level
    JPEG pyramid at 0.5 um/px that OpenSlide reads."""
    import tifffile

    from harness.synth.slide_suite import SyntheticSlideParams, build_slide_suite

    suite = folder / "suite"
    build_slide_suite(suite, SyntheticSlideParams(n_patients=1, second_slide_fraction=0.0, grid=4, min_tissue_fields=12,
                                                  seed=3), workers=1)
    small = open_slide(next((suite / "slides").glob("*.tiff")))
    tile = np.asarray(small.read_region((0, 0), 0, small.level_dimensions[0]).convert("RGB"))
    image = np.tile(tile, (repeats, repeats, 1))
    path = folder / "big.tiff"
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for i in range(4):
            resolution = 1e4 / (0.5 * 2**i)
            tif.write(image[:: 2**i, :: 2**i], tile=(256, 256), photometric="rgb", compression="jpeg",
                      compressionargs={"level": 90}, subfiletype=1 if i else 0,
                      resolution=(resolution, resolution), resolutionunit="CENTIMETER", metadata=None)
    return path


def raw_rate(path: Path, coords: np.ndarray, size: int, input_size: int = 224) -> float:
    from PIL import Image

    slide = open_slide(path)
    started = time.perf_counter()
    for x, y in coords:
        slide.read_region((int(x), int(y)), 0, (size, size)).convert("RGB").resize((input_size, input_size),
                                                                                   Image.BICUBIC)
    return len(coords) / (time.perf_counter() - started)


def pipeline_rate(path: Path, workers: int) -> tuple[float, int]:
    from torch.utils.data import DataLoader

    from harness.models.transform import TileTransform
    from harness.slides.slide_embedding import SlideTiles

    started = time.perf_counter()
    tiling = plan_tiles(path, TilingSpec())
    loader = DataLoader(SlideTiles([tiling], TileTransform(224, (0.5,) * 3, (0.5,) * 3)), batch_size=32,
                        num_workers=workers)
    n = sum(len(batch[1]) for batch in loader)
    return n / (time.perf_counter() - started), n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = big_slide(folder)
        tiling = plan_tiles(path, TilingSpec())
        raw = raw_rate(path, tiling.coords, tiling.read_size)
        rate, n = pipeline_rate(path, args.workers)
        print(f"slide: {path.stat().st_size / 1e6:.1f} MB, {n} tissue tiles of 256 px at 0.5 um/px")
        print(f"raw read_region   {raw:8.1f} tiles/s (one process)")
        print(f"harness pipeline  {rate:8.1f} tiles/s (tiling + {args.workers} reading workers)")
        print(f"ratio             {rate / raw:8.2f}")
        print("peak memory while embedding with vit_tiny (features streamed to the cache):")
        for copies in (1, 4, 16):
            paths = []
            for c in range(copies):
                link = folder / f"copy{copies}-{c}.tiff"
                os.link(path, link)
                paths.append(str(link))
            out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(folder / f"cache{copies}"), *paths],
                                 capture_output=True, text=True, check=True).stdout.split()
            print(f"  {copies} slide(s), {int(out[0]):5d} tiles: peak RSS {int(out[1]):5d} MB")


if __name__ == "__main__":
    main()
