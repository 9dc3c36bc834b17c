"""Extraction throughput: the harness pipeline vs the bare model, and cold vs warm runs.

Prints, from one run on this machine:
  raw forward      images/s of model(x) on pre-made, pre-normalised tensors in memory
  harness          images/s of embed_split on the same images (DataLoader workers, transform,
                   normalisation, NaN check, sharded cache writes)
  ratio            harness / raw (>= 0.85 means the pipeline keeps the model busy)
  cold / warm      wall time of `harness run --tasks synth-tiles,synth-retrieval` with an empty
                   embedding cache, then again with --overwrite (embeddings from the cache), and
                   their ratio. (VQA and report generation train a head on every run, so the
                   cache saves them only their embedding time.)

Usage: python benchmarks/extraction.py [--model timm:vit_tiny_patch16_224] [--n 256] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from harness.cli import main  # noqa: E402
from harness.embedding_cache import EmbeddingCache  # noqa: E402
from harness.tile_embedding import ExtractOptions, embed_split  # noqa: E402
from harness.models.loading import LoadOptions, load_encoder  # noqa: E402
from harness.registry import SynthDataset  # noqa: E402
from harness.sources import DataContext, open_source  # noqa: E402
from harness.sources.base import default_cache_dir  # noqa: E402


def raw_forward_rate(encoder, images, batch_size: int) -> float:
    batches = [
        encoder.transform.normalise(torch.stack([encoder.transform.prepare(images[i])
                                                 for i in range(start, min(start + batch_size, len(images)))]))
        for start in range(0, len(images), batch_size)
    ]
    with torch.inference_mode():
        encoder.module(batches[0])  # warm-up
        started = time.perf_counter()
        for batch in batches:
            encoder.module(batch)
        return len(images) / (time.perf_counter() - started)


def harness_rate(encoder, source, batch_size: int, workers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        embed_split(encoder, source, source.fingerprint(), "test", EmbeddingCache(Path(tmp)),
                    ExtractOptions(batch_size=batch_size, num_workers=workers))
        return len(source.labels("test")) / (time.perf_counter() - started)


def timed_run(args: list[str]) -> float:
    started = time.perf_counter()
    code = main(["run", *args])
    if code != 0:
        raise SystemExit(f"harness run failed with exit code {code}")
    return time.perf_counter() - started


def main_benchmark() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="timm:vit_tiny_patch16_224")
    parser.add_argument("--n", type=int, default=256, help="tiles for the throughput comparison")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="back-to-back raw/harness pairs")
    args = parser.parse_args()

    cache = default_cache_dir()
    encoder = load_encoder(args.model, LoadOptions(random_init=True))
    per_class = -(-args.n // 6)
    spec = SynthDataset(source="synth", generator="tiles",
                        params={"tile_size": 224, "per_class": {"test": per_class}, "seed": 42})
    source = open_source("bench-tiles", spec, DataContext(cache_dir=cache, data_root=cache / "data"))
    source.prepare()

    # The machine's speed drifts by +-20% between runs: measure raw and harness back to back,
    # several times, and report the median of the per-pair ratios (and the spread).
    raws, ends = [], []
    for _ in range(args.repeats):
        raws.append(raw_forward_rate(encoder, source.images("test"), args.batch_size))
        ends.append(harness_rate(encoder, source, args.batch_size, args.workers))
    ratios = np.array(ends) / np.array(raws)
    raw, end_to_end = float(np.median(raws)), float(np.median(ends))
    print(f"model {args.model} (random-init), {6 * per_class} tiles, batch {args.batch_size}, "
          f"{args.workers} workers, torch threads {torch.get_num_threads()}")
    print(f"raw forward       {raw:8.1f} images/s (median)")
    print(f"harness pipeline  {end_to_end:8.1f} images/s (median)")
    print(f"ratio             {np.median(ratios):8.3f}  (median of {len(ratios)} back-to-back pairs; "
          f"range {ratios.min():.3f} to {ratios.max():.3f})")

    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "cache"
        fresh.mkdir()
        timed_run(["--tasks", "synth-tiles", "--model", "random-noise", "--output", str(Path(tmp) / "warmup")])
        (fresh / "synthetic").symlink_to(cache / "synthetic")  # same generated tiles, empty embedding cache
        run_args = ["--model", args.model, "--random-init", "--tasks", "synth-tiles,synth-retrieval",
                    "--cache-dir", str(fresh),
                    "--output", str(Path(tmp) / "results"), "--workers", str(args.workers)]
        cold = timed_run(run_args)
        warm = timed_run([*run_args, "--overwrite"])
    print(f"synthetic run, cold embedding cache  {cold:7.1f} s")
    print(f"synthetic run, warm (--overwrite)    {warm:7.1f} s")
    print(f"cold / warm                          {cold / warm:7.1f} x")


if __name__ == "__main__":
    main_benchmark()
