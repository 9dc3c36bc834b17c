"""Cross-magnification distillation: regions are the blocks of teacher tiles the student's
coarse tile covers, the spatial targets turn with the student's input, the loss matches a hand
computation, the student reads its slides at its own magnification when scored, and a corrupt
slide, or one without a region, is left out without shifting the others' targets."""

import json

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from harness.distillers.config import DistillConfig
from harness.distillers.cross_magnification import CrossMagnification, block_side, build_regions, stacked_cells
from harness.distillers.losses import cosine_distance
from harness.distillers.training_loop import prepare_batch
from harness.errors import HarnessError
from harness.registry import TilingSpec
from harness.slides.tiling import plan_tiles
from harness.synth.slide_suite import SyntheticSlideParams, build_slide_suite

REGISTRY = """
datasets:
  xm-slides:
    source: synth
    generator: slides
    params: {n_patients: 9, second_slide_fraction: 0.0, grid: 8, min_tissue_fields: 14, seed: 5}
  xm-tiles:
    source: synth
    generator: tiles
    params: {tile_size: 64, per_class: {train: 2, val: 1, test: 1}, seed: 3}
tasks:
  xm-grade:
    family: slide_classification
    dataset: xm-slides
    main_score: balanced_accuracy
    params: {folds: 3, abmil: {epochs: 3}, probe_max_steps: 100, bootstrap_resamples: 50}
"""
CONFIG = dict(method="cross_magnification", teachers=[{"model": "synth-oracle"}], student="vit_tiny_patch16_224",
              student_input_size=32, dataset="xm-slides", student_mpp=2.0, steps=4, batch_size=8, warmup_steps=1,
              checkpoint_every=2, min_region_tiles=2, name="xm-student")


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    folder = tmp_path_factory.mktemp("xm") / "suite"
    build_slide_suite(folder, SyntheticSlideParams(n_patients=3, second_slide_fraction=0.0, grid=6,
                                                   min_tissue_fields=14, seed=5), workers=1)
    return sorted((folder / "slides").glob("*.tiff"))


def test_regions_are_the_blocks_of_teacher_tiles_the_student_tile_covers(slides):
    grid = TilingSpec()
    coords = [plan_tiles(p, grid).coords for p in slides]
    regions = build_regions(slides, coords, 0.5, 256, student_mpp=2.0, stride=1, min_tiles=3)
    assert regions.k == 4 and regions.cells.shape[1] == 16
    expected = 0
    for s, (path, tiles) in enumerate(zip(slides, coords)):
        cells = {(int(x) // 256, int(y) // 256): row for row, (x, y) in enumerate(tiles)}
        for wy in range(3):  # a 6 x 6 grid holds 3 x 3 blocks of 4 x 4
            for wx in range(3):
                block = [cells.get((wx + dx, wy + dy), -1) for dy in range(4) for dx in range(4)]
                if sum(b >= 0 for b in block) < 3:
                    continue
                expected += 1
                tiling = regions.tilings[s]
                mine = np.flatnonzero((regions.slide_of == s))
                hit = [i for i in mine if tuple(tiling.coords[i - mine[0]]) == (wx * 256, wy * 256)]
                assert len(hit) == 1 and regions.cells[hit[0]].tolist() == block
        # the student reads its regions as `harness run` reads its tiles at 2 um/px
        scored = plan_tiles(path, grid.at_mpp(2.0))
        tiling = regions.tilings[s]
        assert (tiling.level, tiling.read_size) == (scored.level, scored.read_size) == (2, 256)
    assert len(regions.cells) == expected > 0
    assert block_side(1.0, 0.5) == 2
    with pytest.raises(HarnessError, match="whole multiple"):
        block_side(0.75, 0.5)


def test_a_slide_without_a_region_does_not_shift_the_other_slides_targets(slides):
    coords = [plan_tiles(p, TilingSpec()).coords for p in slides]
    coords[0] = coords[0][:1]  # one tissue tile: no block of slide 0 holds two
    regions = build_regions(slides, coords, 0.5, 256, student_mpp=2.0, stride=1, min_tiles=2)
    assert regions.slide_index.tolist() == [1, 2] and len(regions.tilings) == 2
    rows = stacked_cells(regions, [len(c) for c in coords])
    every_tile = np.concatenate(coords)  # the teacher's tiles, slide after slide
    corners = np.concatenate([t.coords for t in regions.tilings])  # one per region, in region order
    assert (rows[rows >= 0] >= len(coords[0])).all()  # nothing points into slide 0
    for region, (corner, block) in enumerate(zip(corners, rows)):
        slide = regions.slide_index[regions.slide_of[region]]
        first, last = sum(len(c) for c in coords[:slide]), sum(len(c) for c in coords[:slide + 1])
        for cell, row in enumerate(block):
            if row >= 0:
                dy, dx = divmod(cell, 4)
                assert first <= row < last  # the region's own slide
                assert tuple(every_tile[row]) == (corner[0] + 256 * dx, corner[1] + 256 * dy)


def test_spatial_targets_turn_with_the_students_input():
    """An image whose k x k blocks carry their cell number, rotated/flipped by prepare_batch, pools
    back to the same numbers as the targets oriented with the same code."""
    k, size = 4, 32
    ids = np.arange(k * k, dtype=np.float32)
    image = np.kron(ids.reshape(k, k), np.ones((size // k, size // k)))  # (32, 32) block ids
    tile = np.repeat((image[..., None] * 10).astype(np.uint8), 3, axis=2)
    tile_targets = np.eye(k * k, dtype=np.float32)  # tile i -> one-hot i
    config = DistillConfig(**{**CONFIG, "teachers": [{"model": "t"}]})

    class Target:
        weight, dim, standardised = 1.0, 3, np.zeros((1, 3), np.float32)

    method = CrossMagnification(config, [Target()], tile_targets, np.arange(k * k)[None], k)
    for code in range(8):
        x = prepare_batch([tile], np.array([0]), np.array([code]), size)
        seen = torch.nn.functional.adaptive_avg_pool2d(x[:, :1], k)[0, 0]  # normalised ids, oriented
        target, mask = method.spatial_targets(np.array([0]), np.array([code]))
        assert mask.all()
        order_image = torch.argsort(seen.flatten()).tolist()
        order_target = torch.argsort(target[0].argmax(0).flatten().float()).tolist()
        assert order_image == order_target, code


def test_the_loss_matches_a_hand_computation():
    k, d = 2, 3
    rng = np.random.default_rng(0)
    tiles = rng.normal(size=(5, d)).astype(np.float32)
    cells = np.array([[0, 1, -1, 2], [3, -1, -1, 4]])  # two regions, three cells without tissue
    pooled = np.stack([tiles[[0, 1, 2]].mean(0), tiles[[3, 4]].mean(0)])

    class Target:
        weight, dim, standardised = 1.0, d, pooled

    config = DistillConfig(**{**CONFIG, "teachers": [{"model": "t"}], "patch_weight": 0.5})
    method = CrossMagnification(config, [Target()], tiles, cells, k)
    heads = nn.ModuleDict({"t0": nn.ModuleDict({str(d): nn.Identity()}), "spatial": nn.Identity()})
    summary = torch.tensor(rng.normal(size=(2, d)), dtype=torch.float32)
    grid = torch.tensor(rng.normal(size=(2, d, 4, 4)), dtype=torch.float32)  # pooled 2x2 -> means of 2x2 blocks
    loss = method.loss(heads, summary, np.array([0, 1]), grid=grid)

    pooled_grid = grid.reshape(2, d, 2, 2, 2, 2).mean(dim=(3, 5)).permute(0, 2, 3, 1).reshape(2, 4, d)
    student, teacher = [], []
    for r in range(2):
        for c in range(4):
            if cells[r, c] >= 0:
                student.append(pooled_grid[r, c])
                teacher.append(torch.from_numpy(tiles[cells[r, c]]))
    s, t = torch.stack(student), torch.stack(teacher)
    cos = torch.nn.functional.cosine_similarity
    spatial = 0.9 * (1 - cos(s, t, dim=1)).mean() + 0.1 * torch.nn.functional.smooth_l1_loss(s, t)
    expected = cosine_distance(summary, torch.from_numpy(pooled)) + 0.5 * spatial
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    assert float(method.loss(heads, summary, np.array([0, 1]))) == pytest.approx(
        float(cosine_distance(summary, torch.from_numpy(pooled))), rel=1e-5)  # CLS-only without a grid


def test_a_student_distilled_across_magnifications_reads_slides_at_its_own(tmp_path):
    from harness.cli import main

    registry = tmp_path / "xm.yaml"
    registry.write_text(REGISTRY)
    config = tmp_path / "xmag.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    common = ["--include", str(registry), "--cache-dir", str(tmp_path / "cache"), "--device", "cpu"]
    assert main(["distill", "--config", str(config), "--output", str(tmp_path / "student"), "--score", "xm-grade",
                 "--results", str(tmp_path / "results"), *common]) == 0
    card = yaml.safe_load((tmp_path / "student" / "card.yaml").read_text())
    record = json.loads((tmp_path / "student" / "distill.json").read_text())
    assert card["slide_mpp"] == 2.0 and record["distillation_tiles"]["block"] == 4
    assert record["distillation_tiles"]["regions"] > record["distillation_tiles"]["held_out"] > 0
    assert "synth-oracle" in record["fidelity"]
    student = json.loads((tmp_path / "results" / "xm-student" / "xm-grade.json").read_text())
    teacher = json.loads((tmp_path / "results" / "synth-oracle" / "xm-grade.json").read_text())
    assert student["status"] == teacher["status"] == "ok"
    assert student["details"]["tiling"]["mpp"] == 2.0 and teacher["details"]["tiling"]["mpp"] == 0.5
    assert student["timings"]["slides_per_min"] > 0
    report = json.loads((tmp_path / "results" / "xm-student" / "distillation.json").read_text())
    tiles = report["teachers"]["synth-oracle"]["tiles_per_slide"]
    assert tiles["student"] < tiles["teacher"] / 4  # a 4 x 4 block of teacher tiles per student tile
    for bad, message in [({"dataset": "xm-tiles"}, "not a slide dataset"), ({"student_mpp": 0.75}, "whole multiple")]:
        config.write_text(yaml.safe_dump({**CONFIG, **bad}))
        assert main(["distill", "--config", str(config), "--output", str(tmp_path / "bad"), *common]) == 2


def test_a_corrupt_slide_is_named_and_left_out_of_the_regions(tmp_path, capsys):
    from harness.distillers.cross_magnification import region_data
    from harness.tile_embedding import ExtractOptions
    from harness.registry import load_registry
    from harness.sources import DataContext, open_source
    from harness.tasks import FAMILIES

    registry_file = tmp_path / "xm.yaml"
    registry_file.write_text(REGISTRY)
    registry = load_registry([registry_file], FAMILIES)
    context = DataContext(cache_dir=tmp_path / "cache", data_root=tmp_path / "data")
    source = open_source("xm-slides", registry.datasets["xm-slides"], context, registry.datasets)
    source.prepare()
    paths = source.table().paths
    paths[1].write_bytes(b"II*\x00" + b"\x00" * 64)  # a TIFF header and nothing behind it
    data = region_data(DistillConfig(**CONFIG), source, context, ExtractOptions(num_workers=0, precision="fp32"))
    out = capsys.readouterr().out
    assert f"slide left out of distillation: {paths[1]}" in out
    assert data.description["failed_slides"] == 1 and data.description["slides"] == len(paths) - 1
    assert str(paths[1]) not in {tiling.path for tiling in data.images.tilings}
    assert len(data.targets[0].raw) == len(data.cells) == data.description["regions"] > 0
