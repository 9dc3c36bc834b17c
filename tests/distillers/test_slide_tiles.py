"""Tiles from whole slides as distillation data: tile i of the data is the tile the teachers'
target i was computed on, whole slides are held out, a run on a slide dataset trains, and a slide
left out, unreadable after tiling or changed on disk is named without shifting the others."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from harness.distillers.config import DistillConfig, TeacherSpec
from harness.distillers.slide_tiles import held_out_items, slide_teacher_targets, slide_tiles
from harness.tile_embedding import ExtractOptions
from harness.models.loading import LoadOptions, load_encoder
from harness.registry import load_registry
from harness.sources import DataContext, open_source
from harness.tasks import FAMILIES

REGISTRY = """
datasets:
  few-slides:
    source: synth
    generator: slides
    params: {n_patients: 3, second_slide_fraction: 0.0, grid: 4, seed: 6}
"""


def few_slides(tmp_path):
    """The few-slides dataset, generated, and its data context."""
    registry_file = tmp_path / "r.yaml"
    registry_file.write_text(REGISTRY)
    registry = load_registry([registry_file], FAMILIES)
    context = DataContext(cache_dir=tmp_path / "cache", data_root=tmp_path / "data")
    source = open_source("few-slides", registry.datasets["few-slides"], context, registry.datasets)
    source.prepare()
    return source, context


def test_tile_i_is_the_tile_teacher_target_i_was_computed_on(tmp_path):
    source, context = few_slides(tmp_path)
    config = DistillConfig(teachers=[{"model": "timm:vit_tiny_patch16_224", "random_init": True}],
                           dataset="few-slides")
    images, held_out, description = slide_tiles(config, source)
    assert description["slides"] == 3 and len(images) == description["tiles"] > 10
    assert held_out.tolist() == list(range(0, len(images), 10))  # under ten slides: one tile in ten
    extract = ExtractOptions(num_workers=0, precision="fp32")
    [targets] = slide_teacher_targets(config.teachers, source, images, context, extract)
    assert targets.raw.shape == (len(images), 192)
    encoder = load_encoder("timm:vit_tiny_patch16_224", LoadOptions(random_init=True))
    picks = [0, len(images) // 2, len(images) - 1]
    batch = torch.stack([encoder.transform.prepare(images[i]) for i in picks])
    with torch.no_grad():
        direct = encoder.module(encoder.transform.normalise(batch)).numpy()
    cosine = (direct * targets.raw[picks]).sum(1) / np.linalg.norm(direct, axis=1) / np.linalg.norm(
        targets.raw[picks], axis=1)
    assert (cosine > 0.999).all()
    from harness.models.instruments import PARTIAL_ORACLE_COPIES

    teacher = TeacherSpec(model="synth-oracle-tissue")  # instruments take the same grid
    [tissue] = slide_teacher_targets([teacher], source, images, context, extract)
    assert tissue.raw.shape == (len(images), 6 * PARTIAL_ORACLE_COPIES) and (tissue.raw[:, :6].sum(1) == 1).all()


def test_whole_slides_are_held_out_when_there_are_ten_or_more():
    slide_of = np.repeat(np.arange(12), 5)
    assert np.unique(slide_of[held_out_items(slide_of)]).tolist() == [0, 10]
    assert held_out_items(np.repeat(np.arange(3), 7)).tolist() == [0, 10, 20]


def test_feature_kd_on_a_slide_dataset(tmp_path):
    from harness.cli import main

    registry = tmp_path / "r.yaml"
    registry.write_text(REGISTRY)
    config = tmp_path / "kd.yaml"
    config.write_text(yaml.safe_dump(dict(method="multi_teacher", teachers=[{"model": "synth-oracle-tissue"},
                                                                             {"model": "synth-oracle-grade"}],
                                          dataset="few-slides", student_input_size=32, steps=3, batch_size=8,
                                          warmup_steps=1, checkpoint_every=10)))
    assert main(["distill", "--config", str(config), "--output", str(tmp_path / "student"), "--include",
                 str(registry), "--cache-dir", str(tmp_path / "cache"), "--device", "cpu"]) == 0
    record = json.loads((tmp_path / "student" / "distill.json").read_text())
    assert record["steps"] == 3 and record["distillation_tiles"]["slides"] == 3
    assert set(record["fidelity"]) == {"synth-oracle-tissue", "synth-oracle-grade"}
    assert main(["distill", "--config", str(config), "--set", "splits=[train]", "--output", str(tmp_path / "split"),
                 "--include", str(registry), "--cache-dir", str(tmp_path / "cache")]) == 2  # slides have no splits


def test_tiles_read_in_any_order_with_few_slides_open(tmp_path, monkeypatch):
    from harness.distillers import slide_tiles as module

    source, context = few_slides(tmp_path)
    images, _, _ = slide_tiles(DistillConfig(teachers=[{"model": "synth-oracle"}], dataset="few-slides"), source)
    in_order = [images[i] for i in range(len(images))]
    monkeypatch.setattr(module._RandomAccessTiles, "MAX_OPEN", 2)
    shuffled = module.SlideTileImages(images.tilings)
    for i in np.random.default_rng(0).permutation(len(images)):
        assert np.array_equal(shuffled[i], in_order[i])
    assert len(shuffled.reader._open) <= 2
    small = module.SlideTileImages(images.tilings, 32)[0]
    assert small.shape == (32, 32, 3) and small.dtype == np.uint8


def test_a_slide_left_out_does_not_shift_the_other_slides_targets(tmp_path, capsys):
    from harness.models.instruments import oracle_features
    from harness.synth.slide_suite import tile_latents

    source, context = few_slides(tmp_path)
    paths = source.table().paths
    paths[0].write_bytes(b"II*\x00" + b"\x00" * 64)  # a TIFF header and nothing behind it
    images, _, description = slide_tiles(DistillConfig(teachers=[{"model": "synth-oracle"}], dataset="few-slides"),
                                         source)
    assert description["failed_slides"] == 1 and f"slide left out of distillation: {paths[0]}" in capsys.readouterr().out
    extract = ExtractOptions(num_workers=0, precision="fp32")
    [oracle] = slide_teacher_targets([TeacherSpec(model="synth-oracle")], source, images, context, extract)
    truth = np.concatenate([tile_latents(np.load(paths[i].with_suffix(".latents.npy")), t.coords, 256, 256)
                            for i, t in zip([1, 2], images.tilings)])
    assert [t.path for t in images.tilings] == [str(paths[1]), str(paths[2])]
    assert np.allclose(oracle.raw, oracle_features(truth))  # slide 1's tiles get slide 1's latents, not slide 0's


def test_a_slide_unreadable_after_tiling_is_named(tmp_path):
    from harness.errors import HarnessError

    source, _ = few_slides(tmp_path)
    images, _, _ = slide_tiles(DistillConfig(teachers=[{"model": "synth-oracle"}], dataset="few-slides"), source)
    first_of_last = int(np.flatnonzero(images.slide_of == 2)[0])
    images[0]  # noqa: B018 - slide 0 is fine
    Path(images.tilings[2].path).write_bytes(b"II*\x00" + b"\x00" * 64)
    with pytest.raises(HarnessError, match=f"{images.tilings[2].path}: cannot read a tile region"):
        images[first_of_last]


def test_a_slide_changed_on_disk_after_tiling_is_named(tmp_path):
    from harness.errors import HarnessError

    source, context = few_slides(tmp_path)
    images, _, _ = slide_tiles(DistillConfig(teachers=[{"model": "synth-oracle"}], dataset="few-slides"), source)
    first, second = (Path(t.path) for t in images.tilings[:2])
    assert not np.array_equal(images.tilings[0].coords, images.tilings[1].coords)  # the grids differ
    first.write_bytes(second.read_bytes())  # another slide under the first one's name
    extract = ExtractOptions(num_workers=0, precision="fp32")
    with pytest.raises(HarnessError, match=f"tiled {first} differently from the distillation grid"):
        slide_teacher_targets([TeacherSpec(model="synth-oracle-tissue")], source, images, context, extract)
