"""The synthetic tile dataset: N tiles per class and split, with labels and latents.

Generated once into the cache (two worker processes, under a minute for the default size) and
then read as memory-mapped arrays. The folder is built under a temporary name and renamed when
complete, so an interrupted generation is simply redone.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap
from pydantic import BaseModel, ConfigDict, Field

from harness.progress import progress_bar
from harness.synth.scanner import REFERENCE_SCANNER
from harness.synth.stain import STANDARD_HE
from harness.synth.tissue import LATENT_DIM, TISSUE_CLASSES, TissueFactors, draw_tissue

GENERATOR_VERSION = 1
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


def _render_chunk(job: tuple[Path, list[TileRecipe], int, int]) -> int:
    images_path, recipes, seed, size = job
    images = np.load(images_path, mmap_mode="r+")
    for recipe in recipes:
        images[recipe.index] = render_tile(recipe, seed, size)
    images.flush()
    return len(recipes)


def build_tile_suite(target: Path, params: SyntheticTileParams, workers: int | None = None) -> None:
    """Generate the dataset into `target` (atomically: temp folder, then rename)."""
    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    plan = plan_tiles(params)
    jobs = []
    for split, recipes in plan.items():
        folder = tmp / split
        folder.mkdir(parents=True)
        size = params.tile_size
        open_memmap(folder / "images.npy", mode="w+", dtype=np.uint8, shape=(len(recipes), size, size, 3)).flush()
        np.save(folder / "labels.npy", np.array([TISSUE_CLASSES.index(r.factors.tissue) for r in recipes], np.int64))
        np.save(folder / "latents.npy", np.stack([r.factors.latent() for r in recipes]) if recipes
                else np.zeros((0, LATENT_DIM), np.float32))
        for start in range(0, len(recipes), 16):
            jobs.append((folder / "images.npy", recipes[start : start + 16], params.seed, size))
    total = sum(len(r) for r in plan.values())
    workers = workers or min(2, os.cpu_count() or 1)
    try:
        with progress_bar(f"generating {target.name}", total) as advance:
            if workers > 1:
                with mp.get_context("fork").Pool(workers) as pool:
                    for done in pool.imap_unordered(_render_chunk, jobs):
                        advance(done)
            else:
                for job in jobs:
                    advance(_render_chunk(job))
        meta = {"generator": "tiles", "version": GENERATOR_VERSION, "params": params.model_dump(),
                "classes": list(TISSUE_CLASSES), "splits": {s: len(r) for s, r in plan.items()}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
