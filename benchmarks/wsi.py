"""Whole-slide pipeline: tile reading throughput against raw read_region, and peak memory.

Prints, from one run on this machine:
  raw read_region   tiles/s of a plain loop: read_region + RGB + resize to the encoder input,
                    on the coordinates the harness chose
  harness pipeline  tiles/s of the harness's tiling (tissue mask + grid) plus its DataLoader
                    reading the same tiles in worker processes (no model), and the ratio
  peak memory       max RSS of a process that embeds 1, 4 and 16 copies of the slide with
                    vit_tiny (features stream to per-slide cache shards, so it should stay flat)
  flat slide        planning the tiles of a slide without a pyramid (one JPEG level, --flat-side px
                    square at 0.25 um/px): seconds and max RSS of the harness's tiling, whose tissue
                    mask reads the level in blocks, against the same tiling reading the whole level
                    at once (what it did before), and their ratios

The slide of the first three is a 4,096 x 4,096 px pyramid at 0.5 um/px (256 tiles of 256 px), a
4 x 4 mosaic of a synthetic slide.

Usage: python benchmarks/wsi.py [--workers 2] [--parts pipeline,memory,flat] [--flat-side 16384]
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

# each probe prints its own peak RSS (VmHWM): not ru_maxrss, which Linux carries over fork and exec
# from the process that started it (this script's own peak, once it has written a slide)
MEMORY_PROBE = """
import sys
def peak_mb():  # this process's own peak RSS
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) // 1024
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
print(sum(len(f) for f in done.features), peak_mb())
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


PLAN_PROBE = """
import sys, time
def peak_mb():  # this process's own peak RSS
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) // 1024
from harness.registry import TilingSpec
from harness.slides import tiling
if sys.argv[2] == "whole":
    tiling.MAX_MASK_PIXELS = float("inf")  # the whole level read at once, as before the mask was read in blocks
started = time.perf_counter()
plan = tiling.plan_tiles(sys.argv[1], TilingSpec())
print(len(plan.coords), time.perf_counter() - started, peak_mb())
"""


def flat_slide(folder: Path, side: int, tile: int = 512) -> Path:
    """One level, no pyramid: `side` px square of glass at 0.25 um/px with a square of pink tissue
    in its upper left quarter, written tile by tile (never whole in memory)."""
    import tifffile

    rng = np.random.default_rng(0)
    blocks = side // tile

    def tiles():
        for y in range(blocks):
            for x in range(blocks):
                block = np.full((tile, tile, 3), 240, np.uint8)
                if blocks // 8 <= y < blocks // 2 and blocks // 8 <= x < blocks // 2:
                    block[:] = (180, 90, 160)
                    block += rng.integers(0, 20, block.shape, dtype=np.uint8)
                yield block

    path = folder / "flat.tiff"
    resolution = 1e4 / 0.25  # px per cm
    tifffile.imwrite(path, tiles(), shape=(blocks * tile, blocks * tile, 3), dtype=np.uint8, tile=(tile, tile),
                     photometric="rgb", compression="jpeg", resolution=(resolution, resolution),
                     resolutionunit="CENTIMETER", metadata=None)
    return path


def flat_part(folder: Path, side: int) -> None:
    path = flat_slide(folder, side)
    runs = {}
    for how in ("blocks", "whole"):
        out = subprocess.run([sys.executable, "-c", PLAN_PROBE, str(path), how], capture_output=True, text=True,
                             check=True).stdout.split()
        runs[how] = int(out[0]), float(out[1]), int(out[2])
    print(f"flat slide: {side} x {side} px, one level, {path.stat().st_size / 1e6:.1f} MB")
    for how, label in (("blocks", "mask read in blocks (the harness)"), ("whole", "whole level read at once")):
        tiles, seconds, rss = runs[how]
        print(f"  {label:34s} {tiles:5d} tiles  {seconds:6.1f} s  peak RSS {rss:6d} MB")
    print(f"  ratios (whole / blocks)            time {runs['whole'][1] / runs['blocks'][1]:.2f}  "
          f"memory {runs['whole'][2] / runs['blocks'][2]:.2f}  same tiles: {runs['whole'][0] == runs['blocks'][0]}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--parts", default="pipeline,memory,flat")
    parser.add_argument("--flat-side", type=int, default=16_384)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if "flat" in parts:
            flat_part(folder, args.flat_side)
        if not parts & {"pipeline", "memory"}:
            return
        path = big_slide(folder)
        if "pipeline" in parts:
            tiling = plan_tiles(path, TilingSpec())
            raw = raw_rate(path, tiling.coords, tiling.read_size)
            rate, n = pipeline_rate(path, args.workers)
            print(f"slide: {path.stat().st_size / 1e6:.1f} MB, {n} tissue tiles of 256 px at 0.5 um/px")
            print(f"raw read_region   {raw:8.1f} tiles/s (one process)")
            print(f"harness pipeline  {rate:8.1f} tiles/s (tiling + {args.workers} reading workers)")
            print(f"ratio             {rate / raw:8.2f}")
        if "memory" not in parts:
            return
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
