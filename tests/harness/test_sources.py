"""Dataset sources read real files: Hub parquet shards from the local Hub cache, image folders."""

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.errors import HarnessError
from harness.registry import HubDataset, ImageFolderDataset
from harness.sources import DataContext, open_source

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def tile(value: int, size: int = 32) -> Image.Image:
    return Image.fromarray(np.full((size, size, 3), value, np.uint8))


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A Hub dataset repo as `snapshot_download` leaves it in the cache."""
    import huggingface_hub.constants
    from datasets import ClassLabel, Dataset, Features
    from datasets import Image as ImageFeature

    cache = tmp_path / "hub"
    repo = cache / "datasets--lab--tiles"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    data = repo / "snapshots" / COMMIT / "data"
    data.mkdir(parents=True)
    features = Features({"image": ImageFeature(), "label": ClassLabel(names=["benign", "tumour"])})
    for split, n in (("train", 6), ("test", 4)):
        rows = {"image": [tile(40 * i) for i in range(n)], "label": [i % 2 for i in range(n)]}
        Dataset.from_dict(rows, features=features).to_parquet(str(data / f"{split}-00000-of-00001.parquet"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def hub_spec(**overrides) -> HubDataset:
    fields = dict(source="hf", hub_id="lab/tiles", revision="main",
                  data_files={"train": "data/train-*.parquet", "test": "data/test-*.parquet"},
                  classes=["benign", "tumour"])
    fields.update(overrides)
    return HubDataset(**fields)


def context(tmp_path) -> DataContext:
    return DataContext(cache_dir=tmp_path / "cache", data_root=tmp_path / "data")


def test_hub_dataset_reads_parquet_from_the_local_hub_cache(hub_cache, tmp_path):
    source = open_source("tiles", hub_spec(), context(tmp_path))
    assert source.availability().ok
    assert source.labels("train").tolist() == [0, 1, 0, 1, 0, 1]
    images = source.images("test")
    assert len(images) == 4 and np.asarray(images[2]).mean() == 80
    assert source.fingerprint() == open_source("tiles", hub_spec(), context(tmp_path)).fingerprint()


def test_hub_dataset_absent_is_skipped_with_the_command(hub_cache, tmp_path):
    source = open_source("other", hub_spec(hub_id="lab/absent", download_gb=3), context(tmp_path))
    availability = source.availability()
    assert not availability.ok
    assert "harness download other" in availability.reason and "~3 GB" in availability.reason


def test_hub_dataset_wrong_column_is_named(hub_cache, tmp_path):
    source = open_source("tiles", hub_spec(label_column="diagnosis"), context(tmp_path))
    with pytest.raises(HarnessError, match="no column 'diagnosis'.*columns: image, label"):
        source.labels("train")


def test_hub_download_offline_is_one_line(hub_cache, tmp_path):
    with pytest.raises(HarnessError, match="unreachable"):
        open_source("tiles", hub_spec(hub_id="lab/absent"), context(tmp_path)).download()


def make_folder(root: Path, layout: dict) -> None:
    for split, classes in layout.items():
        for name, count in classes.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                tile(10 * i).save(folder / f"{i}.png")


def test_image_folder_labels_follow_class_folders(tmp_path):
    make_folder(tmp_path / "data" / "mine", {"train": {"a": 2, "b": 3}, "test": {"a": 1, "b": 1}})
    spec = ImageFolderDataset(source="imagefolder", path="mine", splits=["train", "test"])
    source = open_source("mine", spec, context(tmp_path))
    assert source.availability().ok and source.class_names() == ["a", "b"]
    assert source.labels("train").tolist() == [0, 0, 1, 1, 1]
    assert np.asarray(source.images("train")[3]).shape == (32, 32, 3)
    # each split's embeddings are keyed by its own files: a tile replaced in place (same size) re-embeds
    # its split only; a copy of the folder elsewhere (stain-normalised tiles, same names) is another dataset
    train, test = source.split_fingerprint("train"), source.split_fingerprint("test")
    replaced = tmp_path / "data" / "mine" / "test" / "a" / "0.png"
    os.utime(replaced, ns=(replaced.stat().st_atime_ns, replaced.stat().st_mtime_ns + 10**9))
    again = open_source("mine", spec, context(tmp_path))
    assert again.split_fingerprint("train") == train and again.split_fingerprint("test") != test
    shutil.copytree(tmp_path / "data" / "mine", tmp_path / "data" / "copy", copy_function=shutil.copy2)
    copy = open_source("copy", spec.model_copy(update={"path": "copy"}), context(tmp_path))
    assert copy.split_fingerprint("train") != train


def test_a_class_folder_the_dataset_does_not_declare_is_named_once_per_split(tmp_path, capsys):
    """A folder 'B' where `classes` says 'b': its images were left out with a warning about 'b' only."""
    make_folder(tmp_path / "data" / "mine", {"train": {"a": 2, "B": 3}, "test": {"a": 1, "B": 1}})
    spec = ImageFolderDataset(source="imagefolder", path="mine", splits=["train", "test"], classes=["a", "b"])
    source = open_source("mine", spec, context(tmp_path))
    assert source.labels("train").tolist() == [0, 0] and len(source.images("train")) == 2
    said = " ".join(capsys.readouterr().err.split())  # rich folds long lines
    assert said.count("folder(s) ['B'] are not among the declared classes ['a', 'b']") == 1, said
    source.labels("test")
    assert "test: folder(s) ['B'] are not among" in " ".join(capsys.readouterr().err.split())


def test_a_16_bit_grey_image_keeps_its_contrast(tmp_path):
    """PIL's convert('RGB') clips a 16-bit grey image at 255: a ramp over 0-65535 read as 99.6% white."""
    make_folder(tmp_path / "data" / "mine", {"train": {"a": 1}})
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "data" / "mine" / "train" / "a" / "wide.png")
    source = open_source("mine", ImageFolderDataset(source="imagefolder", path="mine", splits=["train"]),
                         context(tmp_path))
    read = np.asarray(source.images("train")[1])  # 0.png, then wide.png
    assert read.shape == (64, 64, 3) and read.dtype == np.uint8
    np.testing.assert_array_equal(read[..., 0], (ramp >> 8).astype(np.uint8))


def test_image_folder_absent_explains_how_to_get_it(tmp_path):
    spec = ImageFolderDataset(source="imagefolder", path="mhist", splits=["train"], homepage="https://x.org",
                              instructions="Request access.")
    reason = open_source("mhist", spec, context(tmp_path)).availability().reason
    assert "mhist" in reason and "https://x.org" in reason and "Request access." in reason


def test_unreadable_image_is_named(tmp_path):
    make_folder(tmp_path / "data" / "mine", {"train": {"a": 1}})
    broken = tmp_path / "data" / "mine" / "train" / "a" / "broken.png"
    broken.write_bytes(b"not a png")
    source = open_source("mine", ImageFolderDataset(source="imagefolder", path="mine", splits=["train"]),
                         context(tmp_path))
    with pytest.raises(HarnessError, match="broken.png: unreadable image"):
        source.images("train")[1]


def write_table(root: Path, rows: list[str]) -> Path:
    (root / "imgs").mkdir(parents=True)
    for i in range(4):
        tile(30 * i).save(root / "imgs" / f"{i}.png")
    path = root / "table.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_csv_table_with_reports(tmp_path):
    from harness.registry import CsvDataset

    write_table(tmp_path / "data" / "cohort", ["image,split,report,grade",
                                                "imgs/0.png,train,Low grade tumour.,low",
                                                "imgs/1.png,train,High grade tumour.,high",
                                                "imgs/2.png,test,Low grade tumour.,low"])
    spec = CsvDataset(source="csv", path="cohort/table.csv", text_column="report", label_column="grade")
    source = open_source("cohort", spec, context(tmp_path))
    assert source.availability().ok and source.split_names() == ["test", "train"]
    assert source.class_names() == ["high", "low"] and source.labels("train").tolist() == [1, 0]
    assert source.records("test") == [{"image": 0, "report": "Low grade tumour."}]
    assert np.asarray(source.images("train")[1]).mean() == 30
    # an image re-exported under its name (here: twice the size) is another dataset to the cache and
    # to the results; the same files read again are the same one
    before = source.fingerprint()
    assert open_source("cohort", spec, context(tmp_path)).fingerprint() == before
    table = tmp_path / "data" / "cohort" / "table.csv"
    splits = {s: source.split_fingerprint(s) for s in ("train", "test")}
    table.write_text(table.read_text().replace("Low grade tumour.,low\nimgs/1", "Low grade tumour.,high\nimgs/1"))
    relabelled = open_source("cohort", spec, context(tmp_path))  # a label corrected: scored again, not embedded
    assert relabelled.labels("train").tolist() == [0, 0] and relabelled.fingerprint() != before
    assert {s: relabelled.split_fingerprint(s) for s in ("train", "test")} == splits
    tile(30, size=64).save(tmp_path / "data" / "cohort" / "imgs" / "1.png")
    resized = open_source("cohort", spec, context(tmp_path))
    assert resized.split_fingerprint("train") != splits["train"] and resized.split_fingerprint("test") == splits["test"]
    # the same table and images in another folder: another dataset to the cache
    shutil.copytree(tmp_path / "data" / "cohort", tmp_path / "data" / "copy", copy_function=shutil.copy2)
    copied = CsvDataset(source="csv", path="copy/table.csv", text_column="report", label_column="grade")
    assert open_source("copy", copied, context(tmp_path)).split_fingerprint("test") != splits["test"]


def test_csv_table_errors_name_the_file(tmp_path):
    from harness.registry import CsvDataset

    write_table(tmp_path / "data" / "cohort", ["image,split,question,answer",
                                                "imgs/0.png,train,Is it?,yes", "imgs/1.png,train,Is it?,"])
    spec = CsvDataset(source="csv", path="cohort/table.csv", question_column="question", answer_column="answer")
    with pytest.raises(HarnessError, match=r"table.csv split 'train': record 1 has an empty or non-text answer"):
        open_source("cohort", spec, context(tmp_path)).records("train")
    wrong = CsvDataset(source="csv", path="cohort/table.csv", text_column="report")
    with pytest.raises(HarnessError, match=r"missing column\(s\) \['report'\]"):
        open_source("cohort", wrong, context(tmp_path)).records("train")
    absent = CsvDataset(source="csv", path="nowhere.csv", text_column="report", instructions="Make one.")
    reason = open_source("x", absent, context(tmp_path)).availability().reason
    # what is missing, then the steps, split where the run's summary splits every source's reason
    # (it read "...nowhere.csv. Make one." as all missing, with no steps)
    from harness.run_summary import split_reason
    assert split_reason(reason) == (f"no table at {tmp_path / 'data' / 'nowhere.csv'}",
                                    "Make one. Put it there or pass --data-root")


@pytest.mark.parametrize("row, expected", [
    ("imgs/1.png,train", "line 3 has fewer fields than the header (no 'grade')"),  # was a TypeError sorting classes
    ("imgs/1.png,train,", "line 3 has an empty 'grade'"),  # was a class named ''
    ("imgs/1.png,,low", "line 3 has an empty 'split'"),  # was a row of no split, silently dropped
])
def test_a_csv_row_without_its_label_or_split_names_its_line(tmp_path, row, expected):
    from harness.registry import CsvDataset

    write_table(tmp_path / "data" / "cohort", ["image,split,grade", "imgs/0.png,train,high", row,
                                                "imgs/2.png,test,low"])
    spec = CsvDataset(source="csv", path="cohort/table.csv", label_column="grade")
    with pytest.raises(HarnessError, match=re.escape(f"table.csv: {expected}")):
        open_source("cohort", spec, context(tmp_path)).class_names()


def test_hub_vqa_dataset_gives_question_answer_records(hub_cache, tmp_path):
    from datasets import Dataset, Features, Value
    from datasets import Image as ImageFeature

    data = hub_cache / "datasets--lab--vqa" / "snapshots" / COMMIT / "data"
    data.mkdir(parents=True)
    (hub_cache / "datasets--lab--vqa" / "refs").mkdir()
    (hub_cache / "datasets--lab--vqa" / "refs" / "main").write_text(COMMIT)
    features = Features({"image": ImageFeature(), "question": Value("string"), "answer": Value("string")})
    rows = {"image": [tile(0), tile(9)], "question": ["Is this tumour?", "What organ?"], "answer": ["yes", "colon"]}
    Dataset.from_dict(rows, features=features).to_parquet(str(data / "train-0.parquet"))
    rows["answer"][1] = ""
    Dataset.from_dict(rows, features=features).to_parquet(str(data / "test-0.parquet"))
    spec = hub_spec(hub_id="lab/vqa", label_column=None, classes=[], question_column="question", answer_column="answer")
    source = open_source("vqa", spec, context(tmp_path))
    assert source.labels("train") is None
    assert source.records("train") == [
        {"image": 0, "kind": "closed", "question": "Is this tumour?", "answer": "yes"},
        {"image": 1, "kind": "open", "question": "What organ?", "answer": "colon"},
    ]
    with pytest.raises(HarnessError, match="lab/vqa split 'test': record 1 has an empty or non-text answer"):
        source.records("test")


def test_transformed_dataset_views_its_base_split(tmp_path):
    from harness.registry import SynthDataset, TransformedDataset
    from harness.synth.tile_suite import SyntheticTileParams

    datasets = {
        "base": SynthDataset(source="synth", generator="tiles",
                             params=SyntheticTileParams(tile_size=32, per_class={"test": 3}).model_dump()),
        "view": TransformedDataset(source="transformed", base="base", max_items=5, transforms=["rot90", "jpeg"]),
    }
    source = open_source("view", datasets["view"], context(tmp_path), datasets)
    source.prepare()
    base = open_source("base", datasets["base"], context(tmp_path))
    indices = np.linspace(0, 17, 5).round().astype(int)
    assert source.split_names() == ["clean", "rot90", "jpeg"]
    assert source.labels("rot90").tolist() == base.labels("test")[indices].tolist()
    np.testing.assert_array_equal(source.latents("jpeg"), base.latents("test")[indices])
    clean, rotated = source.images("clean"), source.images("rot90")
    assert len(clean) == 5
    np.testing.assert_array_equal(clean[2], base.images("test")[indices[2]])
    assert any(np.array_equal(rotated[2], np.rot90(clean[2], k)) for k in (1, 2, 3))
    np.testing.assert_array_equal(rotated[2], source.images("rot90")[2])  # seeded per item
    other = datasets["view"].model_copy(update={"transforms": ["rot90"]})
    assert open_source("view", other, context(tmp_path), datasets).fingerprint() != source.fingerprint()


def test_hub_dataset_split_by_a_column_gives_one_split_per_slide(hub_cache, tmp_path):
    """PLISM's layout: one table, a slide_id per row; each slide's tiles in tile_id order, capped."""
    from datasets import Dataset, Features, Value
    from datasets import Image as ImageFeature

    repo = hub_cache / "datasets--lab--plism"
    data = repo / "snapshots" / COMMIT / "data"
    data.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    features = Features({"png": ImageFeature(), "slide_id": Value("string"), "tile_id": Value("int64")})
    slides = ["GV_S60", "GIV_AT2", "GV_S60", "GIV_AT2", "GV_S60", "GIV_AT2"]
    tiles = [2, 0, 0, 2, 1, 1]
    rows = {"png": [tile(10 * t + 100 * (s == "GV_S60")) for s, t in zip(slides, tiles)],
            "slide_id": slides, "tile_id": tiles}
    Dataset.from_dict(rows, features=features).to_parquet(str(data / "tiles-0.parquet"))
    spec = hub_spec(hub_id="lab/plism", data_files={"all": "data/*.parquet"}, image_column="png",
                    label_column=None, classes=[], split_column="slide_id", order_column="tile_id",
                    items_per_split=2)
    source = open_source("plism", spec, context(tmp_path))
    assert source.availability().ok
    assert source.split_names() == ["GIV_AT2", "GV_S60"]
    images = source.images("GV_S60")
    assert len(images) == 2 and [np.asarray(images[i]).mean() for i in range(2)] == [100, 110]
    assert source.labels("GV_S60") is None


def test_real_plism_selection_is_plismbench_s_on_a_made_up_slide(tmp_path, monkeypatch):
    """Two made-up PLISM slides of 16,278 rows in shuffled order: the rows the source keeps are the
    rows plismbench keeps (sort by the x and y in the tile id, pandas sort_values(["x", "y"]),
    then tiles_subset_8139.npy), as pandas computes them independently here."""
    import huggingface_hub.constants
    import pandas as pd

    from harness.sources.hub import plismbench_rows

    cache = tmp_path / "hub"
    repo = cache / "datasets--lab--plism-full"
    data = repo / "snapshots" / COMMIT / "data"
    data.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    rng = np.random.default_rng(0)
    cells = rng.permutation(130 * 130)[:16278]
    frames = []
    for slide in ("GV_S60", "GIV_AT2"):
        order = rng.permutation(16278)
        x, y = cells[order] // 130 * 224, cells[order] % 130 * 224
        frames.append(pd.DataFrame({"slide_id": slide, "tile_id": [f"{slide.replace('_', '')}_0_{a}_{b}" for a, b in
                                                                    zip(x, y)], "png": b"x", "x": x, "y": y}))
    table = pd.concat(frames, ignore_index=True)
    table["row"] = np.arange(len(table))
    table.to_parquet(data / "tiles-0.parquet")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    subset = np.load(Path(__file__).resolve().parents[2] / "harness" / "data" / "plismbench" / "tiles_subset_8139.npy")
    spec = hub_spec(hub_id="lab/plism-full", data_files={"all": "data/*.parquet"}, image_column="png",
                    label_column=None, classes=[], split_column="slide_id", order_column="tile_id",
                    plismbench_subset=8139)
    source = open_source("plism", spec, context(tmp_path))
    for slide in ("GV_S60", "GIV_AT2"):
        expected = table[table.slide_id == slide].sort_values(["x", "y"]).iloc[subset]["row"].tolist()
        assert source._table(slide)["row"] == expected
    assert len(source._table("GV_S60")) == 8139
    everything = plismbench_rows(table[table.slide_id == "GV_S60"]["tile_id"].to_numpy(), 16278, "t")
    assert sorted(everything.tolist()) == list(range(16278))
    # the selection is part of the dataset's identity: another subset is another fingerprint
    other = open_source("plism", hub_spec(**{**spec.model_dump(), "plismbench_subset": 5426}), context(tmp_path))
    assert other.fingerprint() != source.fingerprint()
    with pytest.raises(HarnessError, match="not PLISM's 16278"):
        plismbench_rows(np.array(["a_0_1_2"]), 8139, "lab/x split 's'")


def test_class_label_integers_mean_their_own_names_and_the_commit_is_recorded(hub_cache, tmp_path):
    """The fixture's ClassLabel is [benign, tumour]; a task that lists its classes the other way
    round still gets each tile's true class (by name, not by position)."""
    from harness.runner import dataset_record

    swapped = open_source("tiles", hub_spec(classes=["tumour", "benign"]), context(tmp_path))
    assert swapped.labels("train").tolist() == [1, 0, 1, 0, 1, 0]  # benign is index 1 here
    assert swapped.revision() == COMMIT
    record = dataset_record("tiles", swapped, "fp")
    assert record.revision == COMMIT and record.pinned is False  # tasks.yaml says `main`
    pinned = open_source("tiles", hub_spec(revision=COMMIT), context(tmp_path))
    assert dataset_record("tiles", pinned, "fp").pinned is True


@pytest.mark.parametrize("label, feature", [(-1, "ClassLabel"), (None, "ClassLabel"), (None, "int"), (5, "int")])
def test_a_row_without_a_label_is_named_not_read_as_a_class(hub_cache, tmp_path, label, feature):
    """`datasets` marks a row without a label -1 in a ClassLabel column: read as names[-1], it was
    silently the last class ('tumour'); None was a TypeError."""
    from datasets import ClassLabel, Dataset, Features, Value
    from datasets import Image as ImageFeature

    labels = Value("int64") if feature == "int" else ClassLabel(names=["benign", "tumour"])
    rows = {"image": [tile(10 * i) for i in range(4)], "label": [0, 1, label, 1]}
    shard = next(hub_cache.rglob("train-00000-of-00001.parquet"))
    Dataset.from_dict(rows, features=Features({"image": ImageFeature(), "label": labels})).to_parquet(str(shard))
    source = open_source("tiles", hub_spec(), context(tmp_path))
    expected = "row 2 has label 5, outside the 2 declared classes" if label == 5 else \
        f"row 2 has no label (label = {label!r}); a task scores labelled rows only"
    with pytest.raises(HarnessError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        source.labels("train")


def test_a_hub_row_without_an_image_is_named(hub_cache, tmp_path):
    """An empty Image cell, or an image_column naming a column of file names, failed the task as
    PIL's "Cannot handle this data type: (1, 1), |O"."""
    from datasets import Dataset, Features, Value
    from datasets import Image as ImageFeature

    shard = next(hub_cache.rglob("train-00000-of-00001.parquet"))
    rows = {"image": [tile(10), None, tile(30)], "label": [0, 1, 0], "file": ["a.png", "b.png", "c.png"]}
    Dataset.from_dict(rows, features=Features({"image": ImageFeature(), "label": Value("int64"),
                                               "file": Value("string")})).to_parquet(str(shard))
    images = open_source("tiles", hub_spec(), context(tmp_path)).images("train")
    assert np.asarray(images[0]).mean() == 10
    with pytest.raises(HarnessError, match=r"lab/tiles split 'train' row 1: the 'image' cell is empty"):
        images[1]
    names = open_source("tiles", hub_spec(image_column="file"), context(tmp_path)).images("train")
    with pytest.raises(HarnessError, match=r"row 0: the 'file' cell is a str, not an image; image_column must name"):
        names[0]


def test_data_files_that_put_one_file_in_two_splits_are_one_line(hub_cache, tmp_path):
    """`train: data/*.parquet` beside `test: data/test-*.parquet` (fnmatch's * spans folders) trained
    on the test rows without a word."""
    spec = hub_spec(data_files={"train": "data/*.parquet", "test": "data/test-*.parquet"})
    with pytest.raises(HarnessError, match=r"tiles: data_files of splits 'train' \('data/\*.parquet'\) and 'test' "
                                           r"\('data/test-\*.parquet'\) both match data/test-00000-of-00001.parquet: "
                                           "a file in two splits leaks between them; narrow the patterns"):
        open_source("tiles", spec, context(tmp_path)).labels("train")
