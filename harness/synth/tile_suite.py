"""The synthetic tile datasets: N tiles per class and split, with labels and latents.

Three questions can be asked of the same generator (`task`):
  tissue   six tissues (coarse: architecture and colour both differ, as in real tissue);
  grade    tumour tiles of three nuclear grades: the classes differ only in how atypia shapes the
           nuclei (size, pleomorphism, outline, chromatin, nucleoli), not in colour or density;
           `spread` sets the difficulty: each grade draws atypia from a band of that fraction
           of its third of [0, 1] (1: neighbouring grades touch; small: far apart);
  mitosis  tumour tiles with no, three or four, or seven or eight mitotic figures among 10-12
           look-alike dark bodies (the rest apoptotic: only the figure's shape tells them apart).
Cellularity (and atypia, where it is not the label) is drawn in the same way, in one of three
bands (low, moderate, high) of width `spread`, so the levels the VQA and report tasks name are
separated by a gap, as a pathologist's "low" and "high" are.
Every tile draws its own staining and scanner (`domains.random_acquisition`), independently of its label,
unless `nuisance` is false (one standard staining and the reference scanner).

Generated once into the cache (two worker processes) and then read as memory-mapped arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.synth.domains import SCANNERS, STAININGS, item_acquisition
from harness.synth.class_names import TASK_CLASSES  # re-exported
from harness.synth.scanner import Scanner
from harness.synth.stain import Staining
from harness.synth.suite_writer import write_suite
from harness.synth.tissue import (LATENT_DIM, MAX_MITOSES, NUCLEUS_CLASSES, TISSUE_CLASSES, TissueFactors,
                                  draw_tissue, nucleus_mask)

GENERATOR_VERSION = 4
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
MITOSIS_COUNTS = ((0,), (3, 4), (7, 8))  # of the 10-12 dark bodies of a tumour field
assert max(MITOSIS_COUNTS[-1]) == MAX_MITOSES


class SyntheticTileParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tile_size: int = 224
    per_class: dict[str, int] = Field(default_factory=lambda: {"train": 100, "val": 40, "test": 80})
    task: Literal["tissue", "grade", "mitosis"] = "tissue"
    spread: float = Field(0.6, gt=0.0, le=1.0)  # width of each level's band (grade's atypia, cellularity)
    nuisance: bool = True  # per-tile staining and scanner, independent of the label
    masks: bool = False  # also write each tile's nucleus mask (masks.npy: NUCLEUS_CLASSES indices)
    # task tissue: the tumour class gets this many times per_class tiles (distillation data in which
    # nuclear morphology, drawn on tumour tiles only, is not one tile in six)
    tumour_weight: int = Field(1, ge=1, le=20)
    # a cohort's domain mix: the named stainings and scanners its tiles are drawn from (default: all)
    stainings: list[str] | None = None
    scanners: list[str] | None = None
    seed: int = 0

    @field_validator("stainings", "scanners")
    @classmethod
    def _named(cls, value: list[str] | None, info) -> list[str] | None:
        known = STAININGS if info.field_name == "stainings" else SCANNERS
        unknown = [v for v in value or () if v not in known]
        if unknown or value == []:
            raise ValueError(f"{unknown or '[]'}: choose among {', '.join(known)}")
        return value

    def identity(self) -> dict:
        """What names the generated images (and so the cache folder and fingerprint): masks,
        tumour_weight, stainings and scanners only when set, so older datasets keep their fingerprints."""
        unset = ({"masks"} if not self.masks else set()) | ({"tumour_weight"} if self.tumour_weight == 1 else set())
        unset |= {name for name in ("stainings", "scanners") if getattr(self, name) is None}
        return self.model_dump(exclude=unset or None)


@dataclass(frozen=True)
class TileRecipe:
    split: str
    index: int
    label: int
    factors: TissueFactors


def banded_level(level: int, spread: float, rng: np.random.Generator) -> float:
    """A factor at level k of three (a grade-k tumour's atypia, a tile's cellularity): uniform in a
    band of width spread/3 centred in [k/3, (k+1)/3]."""
    centre = (2 * level + 1) / 6
    return float(centre + rng.uniform(-0.5, 0.5) * spread / 3)


def draw_factors(task: str, label: int, spread: float, rng: np.random.Generator) -> TissueFactors:
    cellularity = banded_level(int(rng.integers(3)), spread, rng)
    if task == "tissue":
        tissue = TISSUE_CLASSES[label]
        return TissueFactors(tissue, cellularity, banded_level(int(rng.integers(3)), spread, rng),
                             int(rng.integers(0, MAX_MITOSES + 1)) if tissue == "tumour" else 0)
    if task == "grade":
        return TissueFactors("tumour", cellularity, banded_level(label, spread, rng),
                             int(rng.integers(0, MAX_MITOSES + 1)))
    return TissueFactors("tumour", cellularity, banded_level(int(rng.integers(3)), spread, rng),
                         int(rng.choice(MITOSIS_COUNTS[label])))


def plan_tiles(params: SyntheticTileParams) -> dict[str, list[TileRecipe]]:
    """Which label and factors every tile gets (class-balanced, shuffled, deterministic)."""
    n_classes = len(TASK_CLASSES[params.task])
    plan = {}
    for split, per_class in params.per_class.items():
        rng = np.random.default_rng([params.seed, SPLIT_CODES.get(split, 9), 0])
        counts = [per_class * (params.tumour_weight if params.task == "tissue" and name == "tumour" else 1)
                  for name in TASK_CLASSES[params.task]]
        labels = np.repeat(np.arange(n_classes), counts)
        rng.shuffle(labels)
        plan[split] = [TileRecipe(split, i, int(c), draw_factors(params.task, int(c), params.spread, rng))
                       for i, c in enumerate(labels)]
    return plan


def tile_acquisition(params: SyntheticTileParams, split: str, index: int) -> tuple[Staining, Scanner, np.random.Generator]:
    """The staining and scanner of tile `index`: from a random stream of its own, seeded by its
    place in the split and never by its label or tissue (plus that stream, for sensor noise)."""
    optics = np.random.default_rng([params.seed, SPLIT_CODES.get(split, 9), 2, index])
    staining, scanner = item_acquisition(optics, params.nuisance, params.stainings, params.scanners)
    return staining, scanner, optics


def tile_protocol(params: SyntheticTileParams, split: str, index: int) -> str:
    """The named staining protocol tile `index` was drawn from (before its own jitter): what a
    medical centre is to PathoROB, a lab whose protocol every one of its tiles shares."""
    staining, _, _ = tile_acquisition(params, split, index)
    return staining.name.rstrip("~")


def render_tile(recipe: TileRecipe, params: SyntheticTileParams) -> np.ndarray:
    return render_tile_and_mask(recipe, params)[0]


def render_tile_and_mask(recipe: TileRecipe, params: SyntheticTileParams) -> tuple[np.ndarray, np.ndarray]:
    """The tile and its nucleus mask (the scanner moves no pixel, so the mask is exact)."""
    code = SPLIT_CODES.get(recipe.split, 9)
    maps = draw_tissue(recipe.factors, np.random.default_rng([params.seed, code, 1, recipe.index]),
                       (params.tile_size, params.tile_size))
    staining, scanner, optics = tile_acquisition(params, recipe.split, recipe.index)
    return scanner.acquire(staining.render(maps), optics), nucleus_mask(maps, recipe.factors.tissue)


def _render_chunk(folder: Path, job: tuple[str, list[TileRecipe], SyntheticTileParams]) -> int:
    split, recipes, params = job
    images = np.load(folder / split / "images.npy", mmap_mode="r+")
    masks = np.load(folder / split / "masks.npy", mmap_mode="r+") if params.masks else None
    for recipe in recipes:
        images[recipe.index], mask = render_tile_and_mask(recipe, params)
        if masks is not None:
            masks[recipe.index] = mask
    images.flush()
    if masks is not None:
        masks.flush()
    return len(recipes)


def build_tile_suite(target: Path, params: SyntheticTileParams, workers: int | None = None) -> None:
    """Generate the dataset into `target` (atomically: temp folder, then rename)."""
    plan = plan_tiles(params)
    splits, jobs = {}, []
    for split, recipes in plan.items():
        latents = np.stack([r.factors.latent() for r in recipes]) if recipes else np.zeros((0, LATENT_DIM))
        splits[split] = (np.array([r.label for r in recipes]), latents)
        jobs += [(split, recipes[start : start + 16], params) for start in range(0, len(recipes), 16)]
    classes = NUCLEUS_CLASSES if params.masks else TASK_CLASSES[params.task]  # a mask's classes are its pixels'
    meta = {"generator": "tiles", "version": GENERATOR_VERSION, "params": params.model_dump(), "classes": list(classes)}
    write_suite(target, splits, params.tile_size, _render_chunk, jobs, meta, workers, masks=params.masks)
