"""Extraction throughput: the harness pipeline vs the bare model, and cold vs warm runs.

Prints, from one run on this machine:
  raw forward      images/s of model(x) on pre-made, pre-normalised tensors in memory, in a process
                   of its own: the same torch threads and dtype, inference mode, warmed up, the
                   faster memory format (the best forward this machine does)
  harness          images/s of embed_split on the same images (DataLoader workers, transform,
                   normalisation, NaN check, sharded cache writes)
  ratio            harness / raw (>= 0.95: the pipeline keeps the model busy): the median over
                   back-to-back pairs in alternating order, with a bootstrap 95% CI of that median
  forward share    of the harness's own wall time, the part inside the model's forward (the same
                   question asked within one run, free of the machine's drift between runs)
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
from harness.memory_allocator import keep_freed_memory  # noqa: E402
from harness.embedding_cache import EmbeddingCache  # noqa: E402
from harness.tile_embedding import ExtractOptions, embed_split, resolve_workers  # noqa: E402
from harness.models.loading import LoadOptions, load_encoder  # noqa: E402
from harness.registry import SynthDataset  # noqa: E402
from harness.sources import DataContext, open_source  # noqa: E402
from harness.sources.base import default_cache_dir  # noqa: E402


def raw_forward_rate(model: str, n: int, batch_size: int) -> float:
    """The best forward this machine does on these images, measured in a process of its own (so
    that nothing the harness process did, e.g. forked workers, is left in it): pre-made, normalised
    tensors in memory, the harness's torch threads and dtype (fp32), inference mode, warmed up, and
    the faster of the contiguous and channels_last memory formats."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, __file__, "--raw-only", "--model", model, "--n", str(n),
                          "--batch-size", str(batch_size), "--threads", str(torch.get_num_threads())],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _raw_forward_in_this_process(model: str, n: int, batch_size: int, threads: int) -> float:
    torch.set_num_threads(threads)
    encoder = load_encoder(model, LoadOptions(random_init=True))
    images = bench_source(n).images("test")
    batches = [encoder.transform.normalise(torch.stack([encoder.transform.prepare(images[i])
                                                        for i in range(start, min(start + batch_size, len(images)))]))
               for start in range(0, len(images), batch_size)]
    def timed(module, formatted) -> float:
        started = time.perf_counter()
        for batch in formatted:
            module(batch)
        return time.perf_counter() - started

    with torch.inference_mode():
        # the memory format is chosen on a short trial; the rate is then one timed pass (taking the
        # better of two timed passes would add the machine's noise to the reference, upwards)
        trials = {}
        for memory_format in (torch.contiguous_format, torch.channels_last):
            module = encoder.module.to(memory_format=memory_format)
            formatted = [b.contiguous(memory_format=memory_format) for b in batches[:3]]
            module(formatted[0])  # warm-up
            trials[memory_format] = timed(module, formatted)
        memory_format = min(trials, key=trials.get)
        module = encoder.module.to(memory_format=memory_format)
        formatted = [b.contiguous(memory_format=memory_format) for b in batches]
        module(formatted[0])
        return len(images) / timed(module, formatted)


def bench_source(n: int):
    cache = default_cache_dir()
    spec = SynthDataset(source="synth", generator="tiles",
                        params={"tile_size": 224, "per_class": {"test": -(-n // 6)}, "seed": 42})
    source = open_source("bench-tiles", spec, DataContext(cache_dir=cache, data_root=cache / "data"))
    source.prepare()
    return source


def harness_rate(encoder, source, batch_size: int, workers: int) -> tuple[float, float]:
    """(images/s of embed_split, the share of its wall time spent inside the model's forward). The
    share compares the pipeline with the model within one run, so the machine's drift between
    runs (+-10-20% here) does not enter it."""
    spent = []
    starts = []
    pre = encoder.module.register_forward_pre_hook(lambda module, args: starts.append(time.perf_counter()))
    post = encoder.module.register_forward_hook(lambda module, args, out: spent.append(time.perf_counter() - starts[-1]))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            embed_split(encoder, source, source.fingerprint(), "test", EmbeddingCache(Path(tmp)),
                        ExtractOptions(batch_size=batch_size, num_workers=workers))
            elapsed = time.perf_counter() - started
    finally:
        pre.remove()
        post.remove()
    return len(source.labels("test")) / elapsed, sum(spent) / elapsed


def timed_run(args: list[str]) -> float:
    started = time.perf_counter()
    code = main(["run", *args])
    if code != 0:
        raise SystemExit(f"harness run failed with exit code {code}")
    return time.perf_counter() - started


def main_benchmark() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="timm:vit_tiny_patch16_224")
    parser.add_argument("--n", type=int, default=600, help="tiles for the throughput comparison")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None, help="default: the harness's (none on CPU)")
    parser.add_argument("--repeats", type=int, default=16, help="back-to-back raw/harness pairs")
    parser.add_argument("--throughput-only", action="store_true", help="skip the cold/warm synthetic runs")
    parser.add_argument("--raw-only", action="store_true", help=argparse.SUPPRESS)  # the reference's own process
    parser.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.workers = resolve_workers(args.workers, "cpu")
    keep_freed_memory()  # both sides under the allocator `harness run` sets (raw: in its own process)
    if args.raw_only:
        print(_raw_forward_in_this_process(args.model, args.n, args.batch_size, args.threads))
        return

    cache = default_cache_dir()
    encoder = load_encoder(args.model, LoadOptions(random_init=True))
    source = bench_source(args.n)
    n_tiles = len(source.labels("test"))

    # The machine's speed drifts by +-20% between runs: measure raw and harness back to back,
    # several times, in alternating order (raw first, then harness first: a drift within a pair
    # favours neither), and report the median of the per-pair ratios (and the spread).
    raws, ends, shares = [], [], []
    for repeat in range(args.repeats):
        if repeat % 2:
            rate, share = harness_rate(encoder, source, args.batch_size, args.workers)
            raws.append(raw_forward_rate(args.model, args.n, args.batch_size))
        else:
            raws.append(raw_forward_rate(args.model, args.n, args.batch_size))
            rate, share = harness_rate(encoder, source, args.batch_size, args.workers)
        ends.append(rate)
        shares.append(share)
    ratios = np.array(ends) / np.array(raws)
    raw, end_to_end = float(np.median(raws)), float(np.median(ends))
    print(f"model {args.model} (random-init), {n_tiles} tiles, batch {args.batch_size}, "
          f"{args.workers} workers, torch threads {torch.get_num_threads()}")
    print(f"raw forward       {raw:8.1f} images/s (median)")
    print(f"harness pipeline  {end_to_end:8.1f} images/s (median)")
    resampled = np.median(np.random.default_rng(0).choice(ratios, (2000, len(ratios))), axis=1)
    low, high = np.percentile(resampled, [2.5, 97.5])
    print(f"ratio             {np.median(ratios):8.3f}  (median of {len(ratios)} back-to-back pairs, bootstrap 95% CI "
          f"{low:.3f} to {high:.3f}; range {ratios.min():.3f} to {ratios.max():.3f})")
    print("  per pair        " + " ".join(f"{r:.3f}" for r in ratios))
    print(f"forward share     {np.median(shares):8.3f}  (of the harness's wall time, inside the model's forward; "
          f"range {min(shares):.3f} to {max(shares):.3f})")
    if args.throughput_only:
        return

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
