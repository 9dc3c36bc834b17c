"""Cross-magnification distillation (XMAG style, arXiv 2509.23097; written from the paper's idea).

The teacher embeds the tiles of a slide dataset's grid (256 px at 0.5 um/px: "20x"); the student
sees one tile at `student_mpp` (2.0 um/px: "5x") covering a k x k block of them, with
k = student_mpp / the grid's mpp. Its targets:
  summary  the mean of the teacher's embeddings of the block's tissue tiles (the region embedding),
           through an adaptor, 1 - cos (and Matryoshka dims as in feature_kd);
  spatial  each teacher tile of the block against the student's token map pooled to k x k,
           through a second adaptor: 0.9 (1 - cos) + 0.1 SmoothL1 on the cells that hold
           tissue, times `patch_weight`; with augmentation the targets turn with the input.
Regions are the k x k blocks of the grid (every `region_stride` tiles) that lie inside the slide
and hold at least `min_region_tiles` tissue tiles. Targets are PHI-S standardised with the
statistics of the teacher's tiles. Every tenth slide is held out to measure fidelity
(distillers/slide_tiles.py).
Scored on slide tasks the student reads `student_mpp` tiles (its card's `slide_mpp`), about
k^2 times fewer per slide than the teacher.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from harness.distillers.feature_kd import FeatureKD, adaptor
from harness.distillers.method import DistillationRun, Prepared, register_method
from harness.distillers.training_items import TrainTargets
from harness.distillers.losses import PhiS, patch_loss
from harness.distillers.slide_tiles import SlideTileImages, held_out_items, teacher_slide_features
from harness.distillers.teachers import TeacherTargets
from harness.distillers.training_loop import orient
from harness.errors import HarnessError
from harness.slides.tiling import SlideError, SlideTiling, open_slide, read_geometry, slide_mpp


class CrossMagnificationParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # the student reads slides at student_mpp (a whole multiple of the dataset's grid mpp); its
    # tile covers a k x k block of teacher tiles
    student_mpp: float = Field(2.0, gt=0)
    patch_weight: float = Field(1.0, ge=0)  # lambda of the spatial term
    region_stride: int = Field(1, ge=1)  # training blocks start every this many grid tiles (1: all overlapping blocks)
    min_region_tiles: int = Field(4, ge=1)  # a block needs this many tissue tiles to be a training region
    matryoshka_dims: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list)  # as in feature_kd
    adaptor_hidden: int = Field(256, ge=1)


@dataclass
class Regions:
    """The student's tiles and, for each, the teacher tiles it covers."""

    tilings: list[SlideTiling]  # per slide with a region: region corners, read at the student's mpp
    slide_of: np.ndarray  # (n,) position of each region's slide in `tilings`
    cells: np.ndarray  # (n, k*k) row-major block -> row in the slide's teacher tiles, -1 = no tissue
    k: int
    slide_index: np.ndarray  # (len(tilings),) each tiling's position in the `paths` it was built from


def stacked_cells(regions: Regions, tiles_per_slide: list[int]) -> np.ndarray:
    """regions.cells as rows of every slide's teacher tiles stacked in `paths` order (-1 stays -1).
    Slides without a region have no tiling, so a tiling's position is not its slide's."""
    first_row = np.cumsum([0, *tiles_per_slide])[:-1][regions.slide_index[regions.slide_of]]
    return np.where(regions.cells >= 0, regions.cells + first_row[:, None], -1)


def block_side(student_mpp: float, grid_mpp: float) -> int:
    k = student_mpp / grid_mpp
    if k < 2 or abs(k - round(k)) > 1e-6:
        raise HarnessError(f"student_mpp {student_mpp} must be a whole multiple (2 or more) of the dataset's "
                           f"tiling target_mpp {grid_mpp}: e.g. {2 * grid_mpp:g} or {4 * grid_mpp:g}")
    return int(round(k))


def build_regions(paths, teacher_coords: list[np.ndarray], grid_mpp: float, tile_size: int, student_mpp: float,
                  stride: int = 1, min_tiles: int = 1) -> Regions:
    """Every k x k block of each slide's tile grid (corners every `stride` tiles) that fits inside
    the slide and holds at least `min_tiles` of the teacher's tiles (`teacher_coords`: level-0
    top-left corners on the grid, as the tiling kept them)."""
    k = block_side(student_mpp, grid_mpp)
    tilings, slide_of, cells, slide_index = [], [], [], []
    for s, (path, coords) in enumerate(zip(paths, teacher_coords)):
        slide = open_slide(path)
        try:
            mpp = slide_mpp(slide)
            side0, _, _ = read_geometry(slide, grid_mpp, tile_size)
            _, level, read_size = read_geometry(slide, student_mpp, tile_size)
            w0, h0 = slide.level_dimensions[0]
        finally:
            slide.close()
        where = {(int(gy), int(gx)): row for row, (gx, gy) in enumerate(np.round(coords / side0).astype(int))}
        n_x, n_y = int(w0 // side0 + 1e-6), int(h0 // side0 + 1e-6)
        corners = []
        for wy in range(0, n_y - k + 1, stride):
            for wx in range(0, n_x - k + 1, stride):
                block = [where.get((wy + dy, wx + dx), -1) for dy in range(k) for dx in range(k)]
                if sum(b >= 0 for b in block) >= min_tiles:
                    corners.append((int(round(wx * side0)), int(round(wy * side0))))
                    cells.append(block)
        if corners:
            slide_of += [len(tilings)] * len(corners)
            slide_index.append(s)
            tilings.append(SlideTiling(str(path), np.array(corners, np.int64), level, read_size, tile_size, mpp))
    return Regions(tilings, np.array(slide_of, np.int64), np.array(cells, np.int64).reshape(-1, k * k), k,
                   np.array(slide_index, np.int64))


@dataclass
class RegionData:
    images: SlideTileImages  # the student's input: region i as (S, S, 3) uint8, read on demand
    targets: list[TeacherTargets]  # per region: the pooled teacher embedding (raw and PHI-S)
    tile_targets: np.ndarray  # (n_teacher_tiles, d) PHI-S of every teacher tile (all slides stacked)
    cells: np.ndarray  # (n_regions, k*k) rows of tile_targets, -1 = no tissue
    k: int
    held_out: np.ndarray
    description: dict


def region_data(config, source, context, extract) -> RegionData:
    if source.kind != "slides":
        raise HarnessError(f"method cross_magnification reads whole slides: dataset '{config.dataset}' is not a "
                           "slide dataset; use a wsi dataset or synthetic slides (e.g. synth-slides-large)")
    spec, params = config.teachers[0], config.method_params
    block_side(params.student_mpp, source.tiling.target_mpp)
    table = source.table()
    embedded, n_parameters = teacher_slide_features(spec, source, table.paths, context, extract)
    for path, reason in embedded.failed.items():
        print(f"slide left out of distillation: {path}: {reason}")
    paths = [table.paths[i] for i in embedded.kept]
    try:
        regions = build_regions(paths, embedded.coords, source.tiling.target_mpp, source.tiling.tile_size,
                                params.student_mpp, params.region_stride, params.min_region_tiles)
    except SlideError as error:
        raise HarnessError(f"dataset '{config.dataset}': {error}") from None
    if not len(regions.cells):
        raise HarnessError(f"dataset '{config.dataset}': no {regions.k}x{regions.k} block of tiles holds "
                           f"{params.min_region_tiles} tissue tiles: lower min_region_tiles or student_mpp")
    tiles_raw = np.concatenate(embedded.features).astype(np.float32)
    cells = stacked_cells(regions, [len(f) for f in embedded.features])
    phis = PhiS(tiles_raw)
    present = cells >= 0
    pooled = (tiles_raw[np.where(present, cells, 0)] * present[..., None]).sum(1) / present.sum(1, keepdims=True)
    targets = [TeacherTargets(spec.model, spec.weight, pooled, phis(pooled), n_parameters)]
    n_slides = len(regions.tilings)
    held_out = held_out_items(regions.slide_of)  # whole slides: their regions overlap
    images = SlideTileImages(regions.tilings, config.student_input_size)
    description = {"dataset": config.dataset, "slides": n_slides, "regions": len(cells), "block": regions.k,
                   "teacher_tiles": len(tiles_raw), "teacher_mpp": source.tiling.target_mpp,
                   "student_mpp": params.student_mpp, "train": len(cells) - len(held_out),
                   "held_out": len(held_out), "failed_slides": len(embedded.failed)}
    return RegionData(images, targets, phis(tiles_raw), cells, regions.k, held_out, description)


@register_method
class CrossMagnification(FeatureKD):
    """FeatureKD's summary loss on pooled region targets, plus the spatial term."""

    name = "cross_magnification"
    Params = CrossMagnificationParams
    teachers = "one"

    @classmethod
    def prepare(cls, run: DistillationRun) -> Prepared:
        data = region_data(run.config, run.source, run.context, run.extract)
        return Prepared(data.images, data.held_out, data.description, data.targets,
                        extra={"tile_targets": data.tile_targets, "cells": data.cells, "k": data.k})

    @classmethod
    def build(cls, run: DistillationRun, prepared: Prepared, keep: np.ndarray) -> "CrossMagnification":
        extra = prepared.extra
        return cls(run.config, [TrainTargets(t, keep) for t in prepared.targets], extra["tile_targets"],
                   extra["cells"][keep], extra["k"])

    @classmethod
    def card(cls, params: CrossMagnificationParams) -> dict:
        return {"slide_mpp": params.student_mpp}  # it reads slide tiles at the magnification it was taught

    def __init__(self, config, targets, tile_targets: np.ndarray, cells: np.ndarray, k: int):
        super().__init__(config, targets)
        self.uses_patch_grid = True
        self.tile_targets = torch.from_numpy(tile_targets)
        self.cells, self.k = cells, k

    def heads(self, student_dim: int):
        heads = super().heads(student_dim)
        heads["spatial"] = adaptor(student_dim, self.tile_targets.shape[1], self.params.adaptor_hidden)
        return heads

    def loss(self, heads, summary, index, grid=None, codes=None) -> torch.Tensor:
        loss = super().loss(heads, summary, index)
        if grid is None or self.params.patch_weight <= 0:
            return loss
        student = F.adaptive_avg_pool2d(grid, self.k)  # (B, D, k, k)
        target, mask = (t.to(grid.device) for t in self.spatial_targets(index, codes))
        rows = mask.flatten()
        student_cells = heads["spatial"](student.permute(0, 2, 3, 1).reshape(-1, student.shape[1]))[rows]
        teacher_cells = target.permute(0, 2, 3, 1).reshape(-1, target.shape[1])[rows]
        return loss + self.params.patch_weight * patch_loss(student_cells, teacher_cells)

    def spatial_targets(self, index: np.ndarray, codes: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, d, k, k) teacher tiles of each region and (B, k, k) tissue mask, oriented like the
        student's input (same rot90/flip code)."""
        cells = torch.from_numpy(self.cells[index]).view(-1, self.k, self.k)
        mask = cells >= 0
        target = self.tile_targets[cells.clamp(min=0)].permute(0, 3, 1, 2)  # (B, d, k, k)
        if codes is not None:
            target = torch.stack([orient(t, c) for t, c in zip(target, codes)])
            mask = torch.stack([orient(m[None], c)[0] for m, c in zip(mask, codes)])
        return target, mask
