"""Cross-magnification speed: slides/min of a 20x teacher against a 5x student, through the
harness's own slide pipeline (tissue mask, grid, OpenSlide reads in workers, batched forward).

Prints, from one run on this machine, for synthetic slides of 3,072 px at 0.5 um/px:
  teacher  vit_small (random init) reading 256 px tiles at 0.5 um/px, resized to 224
  5x, same model   vit_small reading the 2 um/px tiles that cover the same tissue
  5x student       vit_tiny at 112 px reading those 2 um/px tiles (the distilled student's card)
tiles per slide and slides/min of each, and the ratios to the teacher. Random weights: speed
does not depend on them.

Usage: python benchmarks/xmag.py [--slides 6] [--workers 2] [--precision auto]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from harness.embedding_cache import EmbeddingCache  # noqa: E402
from harness.tile_embedding import ExtractOptions, resolve_precision  # noqa: E402
from harness.models.loading import LoadOptions, load_encoder  # noqa: E402
from harness.registry import TilingSpec  # noqa: E402
from harness.slides.slide_embedding import embed_slides  # noqa: E402
from harness.synth.slide_suite import SyntheticSlideParams, build_slide_suite  # noqa: E402


def slides_per_min(spec: str, tiling: TilingSpec, paths, cache: Path, options: ExtractOptions):
    """(slides/min, tiles/slide) of `harness run`'s slide pipeline for one model (random weights
    unless it is a student directory); a card's slide_mpp moves the grid as in `harness run`."""
    encoder = load_encoder(spec, LoadOptions(random_init=not Path(spec).is_dir()))
    tiling = tiling.at_mpp(encoder.card.slide_mpp)
    started = time.perf_counter()
    done = embed_slides(encoder, paths, tiling, EmbeddingCache(cache), options, "bench")
    elapsed = time.perf_counter() - started
    return 60 * len(done.kept) / elapsed, float(np.mean([len(f) for f in done.features]))


def untrained_student(folder: Path) -> str:
    """A student directory as `harness distill --method cross_magnification` writes it, untrained."""
    from harness.distillers.config import DistillConfig
    from harness.distillers.student import write_student
    from harness.distillers.training_loop import build_student

    config = DistillConfig(method="cross_magnification", teachers=[{"model": "timm:vit_small_patch16_224"}],
                           student="vit_tiny_patch16_224", student_input_size=112, student_mpp=2.0)
    write_student(folder, build_student(config.student, config.student_input_size, 0), config, 192, {})
    return str(folder)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slides", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    options = ExtractOptions(num_workers=args.workers, precision=resolve_precision(args.precision, "cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp) / "suite"
        build_slide_suite(suite, SyntheticSlideParams(n_patients=args.slides, second_slide_fraction=0.0, grid=12,
                                                      min_tissue_fields=40, seed=7))
        paths = sorted((suite / "slides").glob("*.tiff"))
        grid = TilingSpec()
        runs = [("teacher vit_small @0.5 um/px", "timm:vit_small_patch16_224", grid),
                ("vit_small @2 um/px", "timm:vit_small_patch16_224", grid.at_mpp(2.0)),
                ("student vit_tiny@112 @2 um/px", untrained_student(Path(tmp) / "student"), grid)]
        print(f"{len(paths)} slides of 3,072 px at 0.5 um/px; precision {options.precision}; "
              f"{args.workers} reading workers")
        print(f"{'':32s} {'tiles/slide':>12s} {'slides/min':>11s} {'speed-up':>9s}")
        base = None
        for i, (label, spec, tiling) in enumerate(runs):
            rate, tiles = slides_per_min(spec, tiling, paths, Path(tmp) / f"cache{i}", options)
            base = base or rate
            print(f"{label:32s} {tiles:12.1f} {rate:11.1f} {rate / base:8.1f}x")


if __name__ == "__main__":
    main()
