"""Synthetic whole slides: pyramidal generic TIFFs that OpenSlide opens, with a slide table.

Each patient has a composition (tumour, lymphocyte and stroma fractions) and a grade; each of
their slides is a `grid x grid` mosaic of `cell`-px fields at 0.5 um/px: a connected blob of
tissue fields drawn from that composition (the rest is bare glass), rendered through the slide's
own staining and scanner (drawn per slide, independently of the patient), written as a tiled
JPEG pyramid (3 levels, mpp set).

  label:    benign (no tumour), low-grade or high-grade tumour: tumour nuclei drawn as grade 1
            or grade 3 of the tile suite's grade task (atypia bands), with 0-2 or 3-8 mitoses
  survival: hazard exp(5 tumour fraction + 2.5 high grade - 4 lymphocyte fraction); exponential
            times, uniform censoring (about 35-40% censored)

Many patients with few fields each: synth-slides has 450 patients and 3-4 tissue fields per
slide, so a chance-level model's C-index and balanced accuracy lie close to chance.

Fields are aligned with the default tile grid (256 px at 0.5 um/px), so each tile's latent is
its field's, which `synth-oracle` returns. Generated once into the cache.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.synth.domains import item_acquisition
from harness.synth.suite_writer import build_atomically
from harness.synth.tile_suite import banded_level
from harness.synth.tissue import LATENT_DIM, MAX_MITOSES, TissueFactors, draw_tissue

SLIDE_GENERATOR_VERSION = 4
GRADES = ("benign", "low-grade", "high-grade")
MPP = 0.5


class SyntheticSlideParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_patients: int = 450
    second_slide_fraction: float = 0.1  # patients with two slides
    grid: int = 3  # fields per side
    cell: int = 256  # field side in px (one default tile)
    min_tissue_fields: int = Field(3, ge=1)
    max_tissue_fields: int | None = None  # default: grid * grid - 3
    grade_spread: float = 0.6  # width of the grade 1 / grade 3 atypia bands (see tile_suite)
    nuisance: bool = True  # each slide its own staining and scanner (else the standard ones)

    @model_validator(mode="after")
    def _fields_fit(self) -> "SyntheticSlideParams":
        field_count_range(self)
        return self
    seed: int = 0


def field_count_range(params: SyntheticSlideParams) -> tuple[int, int]:
    """(fewest, most) tissue fields of a slide; a one-line error when they cannot be drawn."""
    most = params.grid * params.grid - 3 if params.max_tissue_fields is None else params.max_tissue_fields
    most = min(most, params.grid * params.grid)
    if most < params.min_tissue_fields:
        raise ValueError(f"min_tissue_fields {params.min_tissue_fields} exceeds the {most} fields a slide can hold "
                         f"(max_tissue_fields, grid {params.grid} x {params.grid})")
    return params.min_tissue_fields, most


def plan_patients(params: SyntheticSlideParams) -> list[dict]:
    rng = np.random.default_rng([params.seed, 21])
    patients = []
    for p in range(params.n_patients):
        grade = GRADES[p % 3]
        tumour = 0.0 if grade == "benign" else float(rng.uniform(0.25, 0.6))
        lymph = float(rng.uniform(0.0, 0.4))
        risk = 5.0 * tumour + 2.5 * (grade == "high-grade") - 4.0 * lymph
        time = float(rng.exponential(np.exp(-risk)) * 36.0)
        censor = float(rng.uniform(0.0, 40.0))
        n_slides = 2 if rng.random() < params.second_slide_fraction else 1
        patients.append({"patient": f"P{p:03d}", "grade": grade, "tumour": tumour, "lymph": lymph,
                         "time": round(min(time, censor), 3), "event": int(time <= censor), "n_slides": n_slides})
    return patients


def _tissue_blob(rng: np.random.Generator, grid: int, n: int) -> np.ndarray:
    """(grid, grid) bool: a connected set of n fields grown from a random start."""
    mask = np.zeros((grid, grid), bool)
    mask[rng.integers(grid), rng.integers(grid)] = True
    while mask.sum() < n:
        ys, xs = np.nonzero(mask)
        k = rng.integers(len(ys))
        dy, dx = [(0, 1), (1, 0), (0, -1), (-1, 0)][rng.integers(4)]
        y, x = ys[k] + dy, xs[k] + dx
        if 0 <= y < grid and 0 <= x < grid:
            mask[y, x] = True
    return mask


def _field_factors(patient: dict, rng: np.random.Generator, n: int, spread: float) -> list[TissueFactors]:
    n_tumour = int(round(patient["tumour"] * n)) if patient["grade"] != "benign" else 0
    n_tumour = max(n_tumour, 1) if patient["grade"] != "benign" else 0
    n_lymph = int(round(patient["lymph"] * n))
    rest = n - n_tumour - n_lymph
    # no adipose: the tissue mask drops fat, and a field count that varied with the label would let
    # a model that sees nothing (random-noise) guess the label from the bag size
    others = rng.choice(["stroma", "mucosa", "necrosis"], size=max(rest, 0), p=[0.6, 0.25, 0.15])
    kinds = ["tumour"] * n_tumour + ["lymphocytes"] * n_lymph + list(others)
    rng.shuffle(kinds)
    factors = []
    for kind in kinds[:n]:
        if kind == "tumour":
            high = patient["grade"] == "high-grade"
            factors.append(TissueFactors("tumour", float(rng.uniform(0.3, 1.0)), banded_level(2 if high else 0, spread, rng),
                                         int(rng.integers(3, MAX_MITOSES + 1) if high else rng.integers(0, 3))))
        else:
            factors.append(TissueFactors(str(kind), float(rng.uniform(0.3, 1.0)), float(rng.uniform(0.0, 1.0))))
    return factors


def render_slide(job: tuple[Path, dict, int, SyntheticSlideParams]) -> None:
    """Write one slide's pyramid and its field latents (grid, grid, LATENT_DIM)."""
    import tifffile

    path, patient, index, params = job
    rng = np.random.default_rng([params.seed, 22, index])
    grid, cell = params.grid, params.cell
    fewest, most = field_count_range(params)
    n_fields = int(rng.integers(fewest, most + 1))
    blob = _tissue_blob(rng, grid, n_fields)
    factors = iter(_field_factors(patient, rng, int(blob.sum()), params.grade_spread))
    staining, scanner = item_acquisition(np.random.default_rng([params.seed, 23, index]), params.nuisance)
    image = np.full((grid * cell, grid * cell, 3), 255, np.uint8)
    glass = scanner.acquire(np.full((cell, cell, 3), 10 ** -staining.glass_od, np.float32), rng)
    latents = np.zeros((grid, grid, LATENT_DIM), np.float32)
    for y in range(grid):
        for x in range(grid):
            region = np.s_[y * cell:(y + 1) * cell, x * cell:(x + 1) * cell]
            if not blob[y, x]:
                image[region] = glass
                continue
            f = next(factors)
            maps = draw_tissue(f, rng, (cell, cell))
            image[region] = scanner.acquire(staining.render(maps), rng)
            latents[y, x] = f.latent()
    with tifffile.TiffWriter(path) as tif:
        level = image
        for i in range(3):
            resolution = 1e4 / (MPP * 2**i)  # px per cm
            tif.write(level, tile=(256, 256) if min(level.shape[:2]) >= 256 else (128, 128), photometric="rgb",
                      compression="jpeg", compressionargs={"level": 90}, subfiletype=1 if i else 0,
                      resolution=(resolution, resolution), resolutionunit="CENTIMETER", metadata=None)
            level = np.asarray(level[::2, ::2])
    np.save(path.with_suffix(".latents.npy"), latents)


def build_slide_suite(target: Path, params: SyntheticSlideParams, workers: int | None = None) -> None:
    patients = plan_patients(params)
    rows, jobs = [], []
    for patient in patients:
        for s in range(patient["n_slides"]):
            name = f"{patient['patient']}-S{s}.tiff"
            rows.append({"slide": f"slides/{name}", "patient": patient["patient"], "label": patient["grade"],
                         "time": patient["time"], "event": patient["event"]})
            jobs.append((name, patient, len(jobs), params))

    def write(folder: Path) -> None:
        (folder / "slides").mkdir(parents=True)
        with open(folder / "slides.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    meta = {"generator": "slides", "version": SLIDE_GENERATOR_VERSION, "params": params.model_dump(),
            "classes": list(GRADES), "mpp": MPP}
    build_atomically(target, write, _render_job, jobs, len(jobs), meta, workers)


def _render_job(folder: Path, job) -> int:
    name, patient, index, params = job
    render_slide((folder / "slides" / name, patient, index, params))
    return 1


def tile_latents(latent_grid: np.ndarray, coords: np.ndarray, tile_side: int, cell: int) -> np.ndarray:
    """Latent of the field under each tile's centre (coords: level-0 top-left corners)."""
    centre = np.asarray(coords) + tile_side // 2
    rows = np.clip(centre[:, 1] // cell, 0, latent_grid.shape[0] - 1)
    cols = np.clip(centre[:, 0] // cell, 0, latent_grid.shape[1] - 1)
    return latent_grid[rows, cols]


