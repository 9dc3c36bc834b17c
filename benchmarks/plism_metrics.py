"""The whole plismbench evaluation (every slide pair) against its floating-point limit.

PLISM has 91 slides (4,095 pairs) of 8,139 aligned tiles; H-optimus-0 and UNI2-h give 1,536-d
embeddings. `all_pair_metrics` (harness/scoring/plism_metrics.py) computes each slide's
within-slide similarities once and each pair's cross block A B^T once, so the work that cannot be
avoided is the cross blocks: pairs x 2 n^2 d floating-point operations. This script measures, in
one run:
  gemm rate    this machine's float32 matrix-product rate on blocks of the evaluation's shape
  bound        the cross blocks' FLOPs / that rate: the time no exact implementation can beat
  evaluation   the time of all_pair_metrics over every pair, and its ratio to the bound
  one pair     the earlier per-pair computation (pair_metrics pools the 2n tiles: 4x the FLOPs)
               on one pair, times the number of pairs: what the evaluation cost before
A case smaller than PLISM's (the default, to finish in minutes) is extrapolated to PLISM's size
by the FLOP count (pairs x n^2 x d); the ratio to the bound is what carries over.

Usage: python benchmarks/plism_metrics.py [--slides 91] [--tiles 1024] [--dim 384] [--chunk 1024]
       python benchmarks/plism_metrics.py --slides 91 --tiles 8139 --dim 1536   # PLISM's size (hours)
"""

from __future__ import annotations

import argparse
import time
from itertools import combinations

import numpy as np

from harness.scoring.plism_metrics import all_pair_metrics, pair_metrics

PLISM = {"slides": 91, "tiles": 8139, "dim": 1536}


def gemm_rate(n: int, d: int, chunk: int, seconds: float = 3.0) -> float:
    """FLOP/s of float32 (chunk x d) @ (d x n) products, the cross block's pieces; best of repeats."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((min(chunk, n), d), dtype=np.float32)
    b = rng.standard_normal((n, d), dtype=np.float32)
    a @ b.T  # warm up
    best, spent = 0.0, 0.0
    while spent < seconds:
        started = time.perf_counter()
        a @ b.T
        elapsed = time.perf_counter() - started
        spent += elapsed
        best = max(best, 2 * len(a) * n * d / elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slides", type=int, default=91)
    parser.add_argument("--tiles", type=int, default=1024, help="aligned tiles per slide")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--chunk", type=int, default=1024)
    args = parser.parse_args()
    s, n, d = args.slides, args.tiles, args.dim

    rng = np.random.default_rng(0)
    base = rng.standard_normal((n, d), dtype=np.float32)
    slides = [base + rng.uniform(0.3, 2.0) * rng.standard_normal((n, d), dtype=np.float32) for _ in range(s)]
    pairs = list(combinations(range(s), 2))

    rate = gemm_rate(n, d, args.chunk)
    cross_flops = len(pairs) * 2 * n * n * d
    bound = cross_flops / rate

    started = time.perf_counter()
    metrics = all_pair_metrics(slides, pairs, chunk_size=args.chunk)
    evaluation = time.perf_counter() - started

    started = time.perf_counter()
    one = pair_metrics(slides[0], slides[1], chunk_size=args.chunk)
    before = (time.perf_counter() - started) * len(pairs)
    assert all(abs(one[k] - metrics[(0, 1)][k]) < 1e-6 for k in one)

    scale = (PLISM["slides"] * (PLISM["slides"] - 1) / 2 * PLISM["tiles"] ** 2 * PLISM["dim"]) / (len(pairs) * n * n * d)
    print(f"case: {s} slides ({len(pairs)} pairs) x {n} tiles x {d} dims, chunk {args.chunk}")
    print(f"gemm rate (float32)          {rate / 1e9:10.1f} GFLOP/s")
    print(f"cross-block FLOPs            {cross_flops / 1e12:10.3f} TFLOP")
    print(f"bound (FLOPs / rate)         {bound:10.1f} s")
    print(f"evaluation (all pairs)       {evaluation:10.1f} s")
    print(f"ratio evaluation / bound     {evaluation / bound:10.2f}")
    print(f"before: one pair x pairs     {before:10.1f} s  ({before / evaluation:.1f}x the evaluation)")
    if scale != 1:
        print(f"at PLISM's size ({PLISM['slides']} x {PLISM['tiles']} x {PLISM['dim']}, x{scale:.0f} the FLOPs), "
              f"extrapolated: evaluation {evaluation * scale / 3600:.1f} h, bound {bound * scale / 3600:.1f} h, "
              f"before {before * scale / 3600:.1f} h")


if __name__ == "__main__":
    main()
