"""The synthetic tile dataset: N tiles per class and split, with labels and latents.

Generated once into the cache (two worker processes, under a minute for the default size) and
then read as memory-mapped arrays (see suite_writer).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness.synth.scanner import REFERENCE_SCANNER
from harness.synth.stain import STANDARD_HE
from harness.synth.suite_writer import write_suite
from harness.synth.tissue import LATENT_DIM, TISSUE_CLASSES, TissueFactors, draw_tissue

GENERATOR_VERSION = 2
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


class SyntheticTileParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tile_size: int = 224
    per_class: dict[str, int] = Field(default_factory=lambda: {"train": 100, "val": 40, "test": 80})
    seed: int = 0


@dataclass(frozen=True)
class TileRecipe:
    split: str
    index: int
    factors: TissueFactors


def plan_tiles(params: SyntheticTileParams) -> dict[str, list[TileRecipe]]:
    """Which tissue and factors every tile gets (class-balanced, shuffled, deterministic)."""
    plan = {}
    for split, per_class in params.per_class.items():
        rng = np.random.default_rng([params.seed, SPLIT_CODES.get(split, 9), 0])
        classes = np.repeat(np.arange(len(TISSUE_CLASSES)), per_class)
        rng.shuffle(classes)
        factors = rng.uniform(0.0, 1.0, (len(classes), 2))
        plan[split] = [
            TileRecipe(split, i, TissueFactors(TISSUE_CLASSES[c], float(f[0]), float(f[1])))
            for i, (c, f) in enumerate(zip(classes, factors))
        ]
    return plan


def render_tile(recipe: TileRecipe, seed: int, size: int) -> np.ndarray:
    rng = np.random.default_rng([seed, SPLIT_CODES.get(recipe.split, 9), 1, recipe.index])
    maps = draw_tissue(recipe.factors, rng, (size, size))
    return REFERENCE_SCANNER.acquire(STANDARD_HE.render(maps), rng)


def _render_chunk(folder: Path, job: tuple[str, list[TileRecipe], int, int]) -> int:
    split, recipes, seed, size = job
    images = np.load(folder / split / "images.npy", mmap_mode="r+")
    for recipe in recipes:
        images[recipe.index] = render_tile(recipe, seed, size)
    images.flush()
    return len(recipes)


def build_tile_suite(target: Path, params: SyntheticTileParams, workers: int | None = None) -> None:
    """Generate the dataset into `target` (atomically: temp folder, then rename)."""
    plan = plan_tiles(params)
    splits, jobs = {}, []
    for split, recipes in plan.items():
        latents = np.stack([r.factors.latent() for r in recipes]) if recipes else np.zeros((0, LATENT_DIM))
        splits[split] = (np.array([TISSUE_CLASSES.index(r.factors.tissue) for r in recipes]), latents)
        jobs += [(split, recipes[start : start + 16], params.seed, params.tile_size)
                 for start in range(0, len(recipes), 16)]
    meta = {"generator": "tiles", "version": GENERATOR_VERSION, "params": params.model_dump(),
            "classes": list(TISSUE_CLASSES)}
    write_suite(target, splits, params.tile_size, _render_chunk, jobs, meta, workers)
