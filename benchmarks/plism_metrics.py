"""Time and peak memory of the plismbench metrics for one slide pair at plismbench size.

plismbench aligns 8,139 tiles per slide, so one pair pools 2n = 16,278 tiles; with 1,536-d
embeddings (H-optimus-0, UNI2-h) the full 2n x 2n similarity matrix alone would be 1.06 GB
(float32). The chunked implementation keeps at most chunk x 2n similarities.

Usage: python benchmarks/plism_metrics.py [--tiles-per-slide 8139] [--dim 1536] [--chunk 1024]
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np

from harness.scoring.plism_metrics import pair_metrics


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiles-per-slide", type=int, default=8139)
    parser.add_argument("--dim", type=int, default=1536)
    parser.add_argument("--chunk", type=int, default=1024)
    args = parser.parse_args()
    n, d = args.tiles_per_slide, args.dim

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, d), dtype=np.float32)
    b = a + rng.standard_normal((n, d), dtype=np.float32)
    inputs_mb = (a.nbytes + b.nbytes) / 2**20

    tracemalloc.start()
    started = time.perf_counter()
    metrics = pair_metrics(a, b, chunk_size=args.chunk)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    max_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    full_matrix_mb = (2 * n) ** 2 * 4 / 2**20
    print(f"one pair: {n} tiles per slide (2n = {2 * n} pooled) x {d} dims, chunk {args.chunk}")
    print(f"time                        {elapsed:8.1f} s")
    print(f"peak allocated by metrics   {peak / 2**20:8.0f} MB  (inputs {inputs_mb:.0f} MB, not counted)")
    print(f"process max RSS             {max_rss_mb:8.0f} MB")
    print(f"a full 2n x 2n matrix       {full_matrix_mb:8.0f} MB  (never allocated)")
    print("metrics", {k: round(v, 4) for k, v in metrics.items()})


if __name__ == "__main__":
    main()
