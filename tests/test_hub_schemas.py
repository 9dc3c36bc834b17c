"""The registry's Hub datasets read through the real `hf` source path (snapshot in the local Hub
cache, `datasets.load_dataset("parquet")`), from fixtures written in each repository's published
schema: its features (image struct, ClassLabel or bool label, string columns), its split names
and its parquet file names, as the dataset cards and loading code read for the registry show them
(tasks.yaml's "Evidence" comments). The pixels are real H&E (LC25000 lung tiles, tests/assets).

What each fixture copies from its repository:
  crc-100k  1aurent/NCT-CRC-HE: shards data/NCT_CRC_HE_100K-000NN-of-00031-<hash>.parquet (train),
            data/CRC_VAL_HE_7K-0000N-of-00003-<hash>.parquet (test) and the NONORM release's
            data/NCT_CRC_HE_100K_NONORM-... (which train must not pick up); image + ClassLabel
            ADI..TUM, as the other Hub copies of this dataset declare it
  pcam      1aurent/PatchCamelyon: data/{train,valid,test}-*, image + bool label (its card)
  plism     owkin/plism-dataset-tiles: data/train-000NN-of-00293.parquet; slide_id, tile_id, png
            (an image struct of bytes), stainer, scanner (plismbench's extractor and loaders)
  path-vqa  flaviagiammarino/path-vqa: data/{train,validation,test}-*, image + question + answer
  pathorob-camelyon, -tcga, -tolkach-esca  bifold-pathomics/PathoROB-{camelyon,tcga,tolkach_esca}: one train split; image +
            the string columns subset, slide_id, patch_id, biological_class, medical_center (PathoROB's
            extractor loads split "train", pops the image and keeps the rest as its metadata columns)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.registry import load_registry
from harness.sources import DataContext, open_source

COMMIT = "c0ffee" * 6 + "c0fe"
TILES = Path(__file__).parent / "assets" / "lc25000-lung"


def real_tiles(n: int, size: int) -> list[Image.Image]:
    paths = sorted(TILES.glob("*/*.jpeg"))[:: max(1, 600 // n)][:n]
    return [Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR) for p in paths]


def snapshot(cache: Path, hub_id: str) -> Path:
    """The folder `snapshot_download` fills for hub_id at COMMIT, `main` pointing at it."""
    repo = cache / f"datasets--{hub_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    folder = repo / "snapshots" / COMMIT
    (folder / "data").mkdir(parents=True)
    return folder


def write(folder: Path, name: str, rows: dict, features) -> None:
    from datasets import Dataset

    Dataset.from_dict(rows, features=features).to_parquet(str(folder / "data" / name))


@pytest.fixture
def hub(tmp_path, monkeypatch):
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    registry = load_registry()
    context = DataContext(cache_dir=tmp_path / "cache", data_root=tmp_path / "data")
    return cache, registry, context


def crc_100k_snapshot(hub, n: int):
    """crc-100k's spec, its snapshot folder, its features (image + ClassLabel ADI..TUM), n real tiles
    and their labels (0-8 in turn)."""
    from datasets import ClassLabel, Features
    from datasets import Image as ImageFeature

    cache, registry, _ = hub
    spec = registry.datasets["crc-100k"]
    features = Features({"image": ImageFeature(), "label": ClassLabel(names=spec.classes)})
    return spec, snapshot(cache, spec.hub_id), features, real_tiles(n, 224), [i % 9 for i in range(n)]


def write_crc_100k(folder: Path, features, first: tuple[list, list], second: tuple[list, list],
                   test: tuple[list, list]) -> None:
    """1aurent/NCT-CRC-HE's shard names: two NCT_CRC_HE_100K shards (train), one CRC_VAL_HE_7K (test);
    each part (images, labels)."""
    for name, (images, labels) in (("NCT_CRC_HE_100K-00000-of-00031-9780c9afe3d80c58.parquet", first),
                                   ("NCT_CRC_HE_100K-00001-of-00031-89eb0ee8f756b1d1.parquet", second),
                                   ("CRC_VAL_HE_7K-00000-of-00003-cce1097526b69125.parquet", test)):
        write(folder, name, {"image": images, "label": labels}, features)


def test_crc_100k_in_its_published_layout(hub):
    context = hub[2]
    spec, folder, features, tiles, labels = crc_100k_snapshot(hub, 27)
    write_crc_100k(folder, features, (tiles[:9], labels[:9]), (tiles[9:18], labels[9:18]),
                   (tiles[18:], labels[18:]))
    write(folder, "NCT_CRC_HE_100K_NONORM-00000-of-00031-0d0c3d1f2e3a4b5c.parquet",
          {"image": tiles[:4], "label": [0, 0, 0, 0]}, features)
    source = open_source("crc-100k", spec, context)
    assert source.availability().ok
    assert source.split_names() == ["train", "test"]
    assert len(source.images("train")) == 18  # both normalised shards, not the NONORM release
    assert source.labels("train").tolist() == labels[:18]
    assert source.labels("test").tolist() == labels[18:]
    image = source.images("test")[0]
    assert image.size == (224, 224) and np.asarray(image).std() > 10  # a real tile, decoded
    assert source.revision() == COMMIT


def test_pcam_bool_labels_are_normal_and_tumor(hub):
    from datasets import Features, Value
    from datasets import Image as ImageFeature

    cache, registry, context = hub
    spec = registry.datasets["pcam"]
    folder = snapshot(cache, spec.hub_id)
    features = Features({"image": ImageFeature(), "label": Value("bool")})
    tiles = real_tiles(12, 96)
    for k, split in enumerate(("train", "valid", "test")):
        write(folder, f"{split}-00000-of-00001.parquet",
              {"image": tiles[4 * k: 4 * k + 4], "label": [False, True, True, False]}, features)
    source = open_source("pcam", spec, context)
    assert source.availability().ok and source.split_names() == ["train", "val", "test"]
    assert source.labels("val").tolist() == [0, 1, 1, 0]
    assert [source.class_names()[i] for i in source.labels("test")] == ["normal", "tumor", "tumor", "normal"]
    assert source.images("train")[1].size == (96, 96)


def test_plism_tiles_split_by_slide_in_tile_order(hub):
    from datasets import Features, Value
    from datasets import Image as ImageFeature

    cache, registry, context = hub
    # plismbench's subset indexes whole 16,278-tile slides; its selection is tested on made-up
    # slides of that size (tests/harness/test_sources.py). Here: the columns and the split.
    spec = registry.datasets["plism"].model_copy(update={"plismbench_subset": None})
    folder = snapshot(cache, spec.hub_id)
    features = Features({"slide_id": Value("string"), "tile_id": Value("string"), "png": ImageFeature(),
                         "stainer": Value("string"), "scanner": Value("string")})
    tiles = real_tiles(6, 224)
    slides = [("GIVH_AT2", "GIVH", "AT2"), ("GMH_S60", "GMH", "S60")]
    rows = {key: [] for key in features}
    for s, (slide, stainer, scanner) in enumerate(slides):
        for t in (2, 0, 1):  # stored out of tile order
            rows["slide_id"].append(slide)
            rows["tile_id"].append(f"{slide}_{t}_{224 * t}_0")
            rows["png"].append(tiles[3 * s + t])
            rows["stainer"].append(stainer)
            rows["scanner"].append(scanner)
    write(folder, "train-00000-of-00293.parquet", rows, features)
    source = open_source("plism", spec, context)
    assert source.availability().ok
    assert source.split_names() == ["GIVH_AT2", "GMH_S60"]
    images = source.images("GMH_S60")
    assert len(images) == 3 and source.labels("GMH_S60") is None
    for t in range(3):  # the slide's tiles in tile_id order
        assert np.array_equal(np.asarray(images[t]), np.asarray(tiles[3 + t]))


def test_path_vqa_question_answer_records(hub):
    from datasets import Features, Value
    from datasets import Image as ImageFeature

    cache, registry, context = hub
    spec = registry.datasets["path-vqa"]
    folder = snapshot(cache, spec.hub_id)
    features = Features({"image": ImageFeature(), "question": Value("string"), "answer": Value("string")})
    tiles = real_tiles(6, 128)
    qa = [("is there tumour?", "yes"), ("what is present?", "adenocarcinoma")]
    for k, split in enumerate(("train", "validation", "test")):
        write(folder, f"{split}-00000-of-00001-{k}abc.parquet",
              {"image": tiles[2 * k: 2 * k + 2], "question": [q for q, _ in qa], "answer": [a for _, a in qa]},
              features)
    source = open_source("path-vqa", spec, context)
    assert source.availability().ok and source.split_names() == ["train", "val", "test"]
    records = source.records("val")
    assert [(r["question"], r["answer"]) for r in records] == qa
    assert source.images("test")[0].size == (128, 128)


PATHOROB_ROWS = {  # (subset, slide_id, patch_id, biological_class, medical_center), as PathoROB's tables have them
    "pathorob-camelyon": [
        ("ID", "test_035", "34317", "normal", "RUMC"), ("ID", "test_035", "37333", "normal", "RUMC"),
        ("ID", "tumor_011", "101", "tumor", "UMCU"), ("OOD", "patient_020_node_4", "7", "tumor", "CWZ"),
        ("OOD", "patient_020_node_4", "8", "tumor", "CWZ"), ("OOD", "patient_031_node_1", "9", "normal", "LPON")],
    "pathorob-tcga": [  # rows of its tcga_4x4.csv
        ("ID", "TCGA-E9-A1R5-01Z-00-DX1", "0_0_521", "Breast_invasive_carcinoma", "Asterand"),
        ("ID", "TCGA-E9-A1R5-01Z-00-DX1", "0_1_521", "Breast_invasive_carcinoma", "Asterand"),
        ("ID", "TCGA-AA-3520-01Z-00-DX1", "0_0_17", "Colon_adenocarcinoma", "Christiana Healthcare"),
        ("OOD", "TCGA-AN-A0AR-01Z-00-DX1", "0_0_516", "Breast_invasive_carcinoma", "Cureline"),
        ("OOD", "TCGA-AN-A0AR-01Z-00-DX1", "0_1_516", "Breast_invasive_carcinoma", "Cureline"),
        ("OOD", "TCGA-22-0944-01Z-00-DX1", "3_2_88", "Lung_squamous_cell_carcinoma", "Johns Hopkins")],
    "pathorob-tolkach-esca": [  # rows of its tolkach_esca.csv
        ("ID", "case_030", "advent.100", "ADVENT", "VALSET2_WNS"), ("ID", "case_030", "advent.102", "ADVENT", "VALSET2_WNS"),
        ("ID", "case_073", "tumor.1015", "TUMOR", "VALSET4_CHA_FULL"), ("OOD", "case_014", "sh_mag.10", "SH_MAG", "VALSET1_UKK"),
        ("OOD", "case_035", "advent.103", "ADVENT", "VALSET3_TCGA"), ("OOD", "case_035", "advent.105", "ADVENT", "VALSET3_TCGA")],
}


@pytest.mark.parametrize("name", sorted(PATHOROB_ROWS))
def test_pathorob_tiles_know_their_slide_and_centre(hub, name):
    from datasets import Features, Value
    from datasets import Image as ImageFeature

    cache, registry, context = hub
    spec = registry.datasets[name]
    folder = snapshot(cache, spec.hub_id)
    columns = ("subset", "slide_id", "patch_id", "biological_class", "medical_center")
    features = Features({"image": ImageFeature(), **{c: Value("string") for c in columns}})
    table = PATHOROB_ROWS[name]
    rows = {"image": real_tiles(6, 224), **{c: [r[i] for r in table] for i, c in enumerate(columns)}}
    write(folder, "train-00000-of-00001.parquet", rows, features)
    source = open_source(name, spec, context)
    assert source.availability().ok and source.split_names() == ["tiles"]
    assert source.labels("tiles").tolist() == [spec.classes.index(r[3]) for r in table]
    origins = source.origins("tiles").check(6, name)
    assert origins.slides == [r[1] for r in table]
    assert origins.centres == [r[4] for r in table]
    assert origins.subsets == [r[0] for r in table]
    assert origins.patches == [r[2] for r in table]  # slide + patch id: how PathoROB's reduced tables name a tile


def test_a_pathorob_task_reaches_the_reduced_table_through_the_runner(hub, tmp_path):
    """`harness run` on the Tolkach ESCA layout: the patch ids reach the family, which looks the
    reduced table's tiles up in them; six rows cannot serve 9,000, which the result says in one line
    (and the run goes on)."""
    import json

    from datasets import Features, Value
    from datasets import Image as ImageFeature

    from harness.cli import main

    cache, registry, _ = hub
    spec = registry.datasets["pathorob-tolkach-esca"]
    columns = ("subset", "slide_id", "patch_id", "biological_class", "medical_center")
    table = PATHOROB_ROWS["pathorob-tolkach-esca"]
    write(snapshot(cache, spec.hub_id), "train-00000-of-00001.parquet",
          {"image": real_tiles(6, 224), **{c: [r[i] for r in table] for i, c in enumerate(columns)}},
          Features({"image": ImageFeature(), **{c: Value("string") for c in columns}}))
    code = main(["run", "--model", "random-noise", "--tasks", "pathorob-tolkach-esca", "--output", str(tmp_path / "out"),
                 "--cache-dir", str(tmp_path / "cache")])
    [result] = (tmp_path / "out").glob("*/pathorob-tolkach-esca.json")
    result = json.loads(result.read_text())
    assert code == 1 and result["status"] == "failed"
    assert result["reason"].startswith("8996 of the 9000 tiles of PathoROB's tolkach_esca_reduced are not in the data")


def test_a_published_datasets_test_images_that_are_training_images_are_counted_said_once_and_recorded(hub, tmp_path,
                                                                                                       capsys):
    """A Hub dataset's splits cannot be fixed by whoever scores a model on it, so a test image that is
    byte for byte a training image is not refused (as in a folder of one's own) but counted: the run
    says so once for the dataset's tasks, each result records it, and an image re-encoded (not a
    copy) is not counted. Before, nothing looked."""
    import json

    from harness.cli import main

    context = hub[2]
    spec, folder, features, tiles, labels = crc_100k_snapshot(hub, 45)
    test = tiles[36:]
    test[0], test[4] = tiles[3], tiles[30]  # copies of a tile of each training shard
    test[7] = tiles[5].convert("L").convert("RGB")  # the same tissue, other bytes: not a copy
    write_crc_100k(folder, features, (tiles[:18], labels[:18]), (tiles[18:36], labels[18:36]), (test, labels[36:]))
    source = open_source("crc-100k", spec, context)
    assert source.copies_across_splits() == ({"test": 2}, ("test", 0, "train", 3))

    out = tmp_path / "out"
    code = main(["run", "--model", "colour-stats", "--tasks", "crc-100k,crc-retrieval", "--output", str(out),
                 "--cache-dir", str(tmp_path / "cache")])
    said = " ".join(capsys.readouterr().err.split())
    assert code == 0
    assert said.count("is byte for byte an image of an earlier split") == 1
    assert ("crc-100k: the image of 2 test item(s) is byte for byte an image of an earlier split (first: test row 0 "
            "= train row 3)") in said
    for task in ("crc-100k", "crc-retrieval"):
        [result] = out.glob(f"*/{task}.json")
        result = json.loads(result.read_text())
        assert result["status"] == "ok" and result["details"]["copies_across_splits"] == {"test": 2}
