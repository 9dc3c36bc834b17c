"""Can the data path feed a fast model? Decode + resize rates per worker on this CPU, and the
workers a given model rate would need.

A ViT-B in bf16 on an H100 embeds thousands of tiles per second; the harness's DataLoader workers
decode and resize tiles on the CPU (harness/models/transform.py: PIL, the model's interpolation)
and hand uint8 batches to the main process. Measured in one process (one worker's share):
  png        PNG bytes -> decode -> resize to the input size (TileTransform.prepare)
  jpeg       JPEG bytes (quality 90) -> decode -> resize
  array      an in-memory uint8 tile (the synthetic suite's .npy) -> resize
  openslide  read_region of a tile from a pyramidal TIFF at level 0 -> RGB -> resize
Then, for --target-rate, the workers each source needs (rate / per-worker rate), against the
cores here. What the extraction path does on a CUDA device is printed from the code it runs
(harness/tile_embedding.py): the GPU column of the README's plan is filled on the day a GPU runs it.

Usage: python benchmarks/feed.py [--tile 256] [--input 224] [--n 200] [--target-rate 3000]
"""

from __future__ import annotations

import argparse
import io
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from harness.models.transform import TileTransform


def rate(fn, items) -> float:
    fn(items[0])  # warm-up
    started = time.perf_counter()
    for item in items:
        fn(item)
    return len(items) / (time.perf_counter() - started)


def tiles(n: int, side: int) -> list[np.ndarray]:
    """Textured RGB tiles (noise compresses like tissue does not: use smoothed noise)."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (n, side // 8, side // 8, 3), dtype=np.uint8)
    return [np.asarray(Image.fromarray(t).resize((side, side), Image.BICUBIC)) for t in small]


def encoded(images: list[np.ndarray], fmt: str) -> list[bytes]:
    out = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        out.append(buffer.getvalue())
    return out


def pyramid(path: Path, side: int) -> Path:
    """A 2-level tiled pyramid OpenSlide reads (generic TIFF with resolution tags)."""
    import tifffile

    image = np.concatenate([np.concatenate(tiles(8, side), axis=1)] * 4, axis=0)  # 4 x 8 tiles
    with tifffile.TiffWriter(path) as tif:
        for level in range(2):
            tif.write(image[:: 2**level, :: 2**level], tile=(256, 256), photometric="rgb", compression="jpeg",
                      subfiletype=1 if level else 0, resolution=(1e4 / (0.5 * 2**level),) * 2,
                      resolutionunit="CENTIMETER", metadata=None)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tile", type=int, default=256, help="side of the stored tiles")
    parser.add_argument("--input", type=int, default=224, help="the model's input side")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--target-rate", type=float, default=3000.0, help="images/s the model consumes")
    args = parser.parse_args()
    transform = TileTransform(args.input, (0.5,) * 3, (0.5,) * 3)
    images = tiles(args.n, args.tile)
    pngs, jpegs = encoded(images, "PNG"), encoded(images, "JPEG")
    rates = {
        "png": rate(lambda b: transform.prepare(Image.open(io.BytesIO(b))), pngs),
        "jpeg": rate(lambda b: transform.prepare(Image.open(io.BytesIO(b))), jpegs),
        "array": rate(transform.prepare, images),
    }
    with tempfile.TemporaryDirectory() as tmp:
        import openslide

        slide = openslide.OpenSlide(str(pyramid(Path(tmp) / "slide.tiff", args.tile)))
        corners = [(x * args.tile, y * args.tile) for y in range(4) for x in range(8)]
        reads = [corners[i % len(corners)] for i in range(args.n)]
        rates["openslide"] = rate(lambda c: transform.prepare(
            slide.read_region(c, 0, (args.tile, args.tile)).convert("RGB")), reads)
        slide.close()

    cores = os.cpu_count() or 1
    print(f"{args.tile} px tiles -> {args.input} px input (bicubic), one worker, {args.n} tiles each; {cores} cores here")
    print(f"{'source':<10} {'per worker':>12} {'workers for ' + format(args.target_rate, '.0f') + ' img/s':>22}")
    for name, value in rates.items():
        needed = math.ceil(args.target_rate / value)
        print(f"{name:<10} {value:9.0f} img/s {needed:>12d}" + ("" if needed <= cores else f"  (> {cores} cores)"))
    print("on CUDA the extraction path (harness/tile_embedding.py) moves uint8 batches: pinned memory, "
          "copied non_blocking on a side stream while the previous batch is embedded (DevicePrefetcher), "
          "scaled and normalised on the device, channels_last, bf16 autocast where supported. Decode and resize "
          "stay in the CPU workers: PIL's antialiased resize is the reference transform (GPU decode not used).")


if __name__ == "__main__":
    main()
