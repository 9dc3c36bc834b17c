"""Memory of segmentation's dense features at a real task's size: a ViT-L/16's maps for a
CoNSeP-sized task (656 cells at 224 px: 656 x 1024 x 16 x 16 values), written through the
embedding cache and read back by the decoder's batches, with the process's resident memory
sampled throughout.

    python benchmarks/dense_memory.py [--images 656] [--channels 1024] [--grid 16] [--dir /tmp/x]

Prints the size of the maps, the peak anonymous resident memory above the start while writing
them and while reading them batch by batch (a memory-mapped file's pages are page cache, not
counted), and the stated bound (one shard of DENSE_SHARD images plus a
batch of 64, docs/protocols.md): the ratio says whether extraction and training stay within it.
The maps are random numbers (what the encoder computes does not change what is stored).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from harness.embedding_cache import EmbeddingCache
from harness.scoring.segmentation_head import DenseBatches
from harness.tile_embedding import DENSE_SHARD


def rss_bytes() -> int:
    """Anonymous resident memory (RssAnon): what the process holds. Pages of a memory-mapped file
    (RssFile) are the page cache, which the kernel reclaims under pressure, and are not counted."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status (Linux only)")


class PeakMemory:
    """The highest resident memory seen (sampled every 5 ms) while the block runs, above its start."""

    def __enter__(self):
        self.start = self.peak = rss_bytes()
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while self._running:
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.005)

    def __exit__(self, *exc):
        self._running = False
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def above_start(self) -> int:
        return self.peak - self.start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=656)
    parser.add_argument("--channels", type=int, default=1024)
    parser.add_argument("--grid", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="dense-memory-"))
    per_image = args.channels * args.grid * args.grid * 2  # float16
    total = per_image * args.images
    rng = np.random.default_rng(0)
    one_batch = rng.standard_normal((args.batch, args.channels, args.grid, args.grid)).astype(np.float32)

    cache = EmbeddingCache(folder)
    with PeakMemory() as writing:
        writer = cache.writer("vit-l-consep", args.images, np.float16, DENSE_SHARD)
        for start in range(0, args.images, args.batch):  # what extraction hands the writer: one batch at a time
            writer.add(one_batch[: min(args.batch, args.images - start)])
        cached = writer.finish({"model": "random ViT-L-sized maps"})
    maps = cached.embeddings
    images = np.zeros((args.images, 8, 8, 3), np.uint8)  # the decoder's images and masks are not what is measured
    masks = np.zeros((args.images, 8, 8), np.uint8)
    batches = DenseBatches(maps, images, masks)
    with PeakMemory() as reading:
        for start in range(0, args.images, args.batch):
            batches.batch(np.arange(start, min(start + args.batch, args.images)))
    shard = DENSE_SHARD * per_image
    bound = shard + args.batch * args.channels * args.grid * args.grid * 4 * 2  # a shard and two float32 batches
    print(f"maps: {args.images} x {args.channels} x {args.grid} x {args.grid} float16 = {total / 1e9:.3f} GB on disk "
          f"({maps.shape}, {folder})")
    print(f"stated bound: one shard ({DENSE_SHARD} images, {shard / 1e6:.0f} MB) + two float32 batches of "
          f"{args.batch} ({bound / 1e6 - shard / 1e6:.0f} MB) = {bound / 1e6:.0f} MB")
    print(f"writing: peak resident memory {writing.above_start / 1e6:.0f} MB above the start "
          f"= {writing.above_start / bound:.2f} x the bound, {writing.above_start / total:.2f} x the maps")
    print(f"reading batches: peak {reading.above_start / 1e6:.0f} MB above the start "
          f"= {reading.above_start / bound:.2f} x the bound, {reading.above_start / total:.2f} x the maps")


if __name__ == "__main__":
    main()
