"""The aligned robustness suite (synth-plism): the same tiles under every staining x scanner.

One split per domain, named `<staining>@<scanner>` (a 'slide' in plismbench's terms). Tile i of
every split is the same tissue (same concentration maps), so embeddings of tile i should agree
across domains; labels and latents are identical in every split. The tissue is drawn once per
tile and rendered through each domain in the same worker, so generation costs little more than
the rendering itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.synth.domains import SCANNERS, STAININGS, domain_name
from harness.synth.suite_writer import write_suite
from harness.synth.tissue import TISSUE_CLASSES, TissueFactors, draw_tissue

PLISM_GENERATOR_VERSION = 3


class SyntheticPlismParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tile_size: int = 224
    n_tiles: int = 100  # per domain; top-10 chance level is 10 / (2 n - 1)
    stainings: list[str] = Field(default_factory=lambda: list(STAININGS)[:4])
    scanners: list[str] = Field(default_factory=lambda: list(SCANNERS))
    seed: int = 0

    @field_validator("stainings")
    @classmethod
    def _known_stainings(cls, names: list[str]) -> list[str]:
        return _known(names, STAININGS, "staining")

    @field_validator("scanners")
    @classmethod
    def _known_scanners(cls, names: list[str]) -> list[str]:
        return _known(names, SCANNERS, "scanner")

    def domains(self) -> list[tuple[str, str]]:
        return [(stain, scanner) for stain in self.stainings for scanner in self.scanners]


def _known(names: list[str], table: dict, what: str) -> list[str]:
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ValueError(f"unknown {what} {unknown[0]!r} (known: {', '.join(table)})")
    return names


def plan_aligned_tiles(params: SyntheticPlismParams) -> list[TissueFactors]:
    rng = np.random.default_rng([params.seed, 7])
    classes = np.arange(params.n_tiles) % len(TISSUE_CLASSES)
    rng.shuffle(classes)
    factors = rng.uniform(0.0, 1.0, (params.n_tiles, 2))
    return [TissueFactors(TISSUE_CLASSES[c], float(f[0]), float(f[1])) for c, f in zip(classes, factors)]


def render_aligned(factors: TissueFactors, index: int, params: SyntheticPlismParams) -> dict[str, np.ndarray]:
    """domain name -> the tile's RGB image in that domain."""
    size = params.tile_size
    maps = draw_tissue(factors, np.random.default_rng([params.seed, 8, index]), (size, size))
    light = {stain: STAININGS[stain].render(maps) for stain in params.stainings}
    tiles = {}
    for d, (stain, scanner) in enumerate(params.domains()):
        sensor = np.random.default_rng([params.seed, 9, index, d])  # sensor noise differs per scan
        tiles[domain_name(stain, scanner)] = SCANNERS[scanner].acquire(light[stain], sensor)
    return tiles


def _render_chunk(folder: Path, job: tuple[list[int], list[TissueFactors], SyntheticPlismParams]) -> int:
    indices, factors, params = job
    arrays = {domain_name(*d): np.load(folder / domain_name(*d) / "images.npy", mmap_mode="r+")
              for d in params.domains()}
    for index, factor in zip(indices, factors):
        for domain, tile in render_aligned(factor, index, params).items():
            arrays[domain][index] = tile
    for array in arrays.values():
        array.flush()
    return len(indices) * len(arrays)


def build_plism_suite(target: Path, params: SyntheticPlismParams, workers: int | None = None) -> None:
    plan = plan_aligned_tiles(params)
    labels = np.array([TISSUE_CLASSES.index(f.tissue) for f in plan])
    latents = np.stack([f.latent() for f in plan])
    splits = {domain_name(*d): (labels, latents) for d in params.domains()}
    jobs = [(list(range(start, min(start + 8, len(plan)))), plan[start : start + 8], params)
            for start in range(0, len(plan), 8)]
    meta = {"generator": "plism", "version": PLISM_GENERATOR_VERSION, "params": params.model_dump(),
            "classes": list(TISSUE_CLASSES)}
    write_suite(target, splits, params.tile_size, _render_chunk, jobs, meta, workers)
