"""A dataset's files are data from outside: a decompression bomb, a FIFO, a truncated image or a
table row (an image's or a slide's) pointing elsewhere on the machine is one line naming the file or
the line, never a hang, a memory blow-up or a read outside the dataset's folder."""

from __future__ import annotations

import io
import os
import re
import warnings

import numpy as np
import pytest
from PIL import Image

from harness.errors import HarnessError
from harness.registry import CsvDataset, ImageFolderDataset, WsiDataset
from harness.sources import open_source
from harness.sources.image_files import MAX_IMAGE_PIXELS
from tests.harness.test_sources import COMMIT, context, hub_cache, hub_spec  # noqa: F401 - hub_cache: a fixture


def folder_source(tmp_path, files: dict[str, object]):
    """An image folder dataset 'mine' with one class 'a': name -> a PIL image or raw bytes."""
    folder = tmp_path / "data" / "mine" / "train" / "a"
    folder.mkdir(parents=True)
    for name, content in files.items():
        if isinstance(content, Image.Image):
            content.save(folder / name)
        else:
            (folder / name).write_bytes(content)
    spec = ImageFolderDataset(source="imagefolder", path="mine", splits=["train"])
    return open_source("mine", spec, context(tmp_path)), folder


def bilevel(width: int, height: int) -> Image.Image:
    """A large image in a small file: one bit per pixel, all white."""
    return Image.new("1", (width, height), 1)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_images_past_the_bound_are_refused_in_one_line_and_not_decoded(tmp_path):
    """200 M px: PIL refuses it naming no file (its DecompressionBombError); 100 M px: PIL decodes it
    after a warning, and so does the harness, without the warning."""
    ok = Image.fromarray(np.full((16, 16, 3), 7, np.uint8))
    source, folder = folder_source(tmp_path, {"0.png": ok, "1.png": bilevel(10_000, 10_000),
                                              "2.png": bilevel(20_000, 10_000)})
    images = source.images("train")
    assert np.asarray(images[0]).mean() == 7
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's DecompressionBombWarning would be printed beside the run's output
        assert images[1].size == (10_000, 10_000)
        with pytest.raises(HarnessError) as bomb:
            images[2]
    assert str(bomb.value) == (f"{folder / '2.png'}: 200,000,000 px, more than a dataset image may have "
                               f"({MAX_IMAGE_PIXELS:,} px); remove or replace the file")


def test_a_fifo_or_a_folder_named_as_an_image_is_refused_without_being_opened(tmp_path):
    """Opening a FIFO blocks until something writes to it: a run would hang for ever."""
    source, folder = folder_source(tmp_path, {"0.png": bilevel(8, 8)})
    os.mkfifo(folder / "1.png")
    (folder / "2.png").mkdir()
    images = source.images("train")
    for index, name in ((1, "1.png"), (2, "2.png")):
        with pytest.raises(HarnessError, match=f"{name}: not a regular file \\(a folder, FIFO or device\\), not read; remove or replace"):
            images[index]


def test_a_truncated_image_fails_at_decoding_naming_the_file(tmp_path):
    whole = png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    source, folder = folder_source(tmp_path, {"0.png": whole[: len(whole) // 2]})
    with pytest.raises(HarnessError, match=r"0.png: unreadable image \(.*truncated"):
        source.images("train")[0]


@pytest.mark.parametrize("value", ["../secret.png", "/etc/passwd", "imgs/../../secret.png", "", "C:\\x.png",
                                   "imgs\\..\\..\\secret.png"])
def test_a_table_row_may_not_point_outside_its_folder(tmp_path, value):
    root = tmp_path / "data" / "cohort"
    (root / "imgs").mkdir(parents=True)
    bilevel(8, 8).save(root / "imgs" / "0.png")
    bilevel(8, 8).save(tmp_path / "data" / "secret.png")
    (root / "table.csv").write_text(f"image,split,grade\nimgs/0.png,train,low\n\"{value}\",train,high\n")
    spec = CsvDataset(source="csv", path="cohort/table.csv", label_column="grade")
    with pytest.raises(HarnessError) as error:
        open_source("cohort", spec, context(tmp_path)).images("train")
    if not value:  # an empty cell is named as such, before paths are looked at
        assert str(error.value) == f"{root / 'table.csv'}: line 3 has an empty 'image'; fill it in or remove the row"
        return
    assert str(error.value) == (f"{root / 'table.csv'}: line 3, column 'image': {value!r} is not a path inside "
                                "the table's folder (relative, without '..'); fix the table, or put the files or a "
                                "link to their folder under it")


def test_a_slide_table_may_not_point_outside_its_folder(tmp_path):
    root = tmp_path / "data" / "cohort"
    root.mkdir(parents=True)
    (root / "slides.csv").write_text("slide,patient,label\nslides/a.tiff,P1,benign\n/dev/zero,P2,tumour\n")
    spec = WsiDataset(source="wsi", path="cohort/slides.csv", label_column="label")
    with pytest.raises(HarnessError, match=r"slides.csv: line 3, column 'slide': '/dev/zero' is not a path inside"):
        open_source("cohort", spec, context(tmp_path)).table()


def test_a_table_inside_its_folder_is_read(tmp_path):
    root = tmp_path / "data" / "cohort"
    (root / "imgs" / "a..b").mkdir(parents=True)
    bilevel(8, 8).save(root / "imgs" / "a..b" / "0.png")  # '..' inside a name is a name, not a step up
    (root / "table.csv").write_text("image,split,grade\nimgs/a..b/0.png,train,low\n./imgs/a..b/0.png,train,high\n")
    source = open_source("cohort", CsvDataset(source="csv", path="cohort/table.csv", label_column="grade"),
                         context(tmp_path))
    assert [image.size for image in (source.images("train")[0], source.images("train")[1])] == [(8, 8), (8, 8)]


def test_a_hub_row_too_large_to_decode_names_the_dataset_split_and_row(hub_cache, tmp_path):
    from datasets import ClassLabel, Dataset, Features
    from datasets import Image as ImageFeature

    data = hub_cache / "datasets--lab--tiles" / "snapshots" / COMMIT / "data"
    features = Features({"image": ImageFeature(), "label": ClassLabel(names=["benign", "tumour"])})
    rows = {"image": [{"bytes": png_bytes(bilevel(20_000, 10_000)), "path": None},
                      {"bytes": png_bytes(bilevel(16, 16)), "path": None}], "label": [0, 1]}
    Dataset.from_dict(rows, features=features).to_parquet(str(data / "test-00000-of-00001.parquet"))
    images = open_source("tiles", hub_spec(), context(tmp_path)).images("test")
    with pytest.raises(HarnessError, match=r"^lab/tiles split 'test' row 0: 200,000,000 px, more than a dataset"):
        images[0]
    assert images[1].size == (16, 16)


def test_a_consep_label_file_that_expands_past_the_bound_is_refused_from_its_header(tmp_path):
    """A compressed .mat variable is a few hundred kB on disk whatever it expands to: its declared
    shape is checked before loadmat decompresses it."""
    from scipy.io import savemat

    from harness.sources.segmentation_folders import read_mask

    savemat(tmp_path / "bomb.mat", {"type_map": np.zeros((20_000, 10_000), np.uint8)}, do_compression=True)
    assert (tmp_path / "bomb.mat").stat().st_size < 1_000_000
    with pytest.raises(HarnessError, match=r"bomb.mat: no 'type_map' of at most 178,956,970 px \(found \(20000, 10000\)\)"):
        read_mask(tmp_path / "bomb.mat", "consep")
    savemat(tmp_path / "ok.mat", {"type_map": np.arange(7).reshape(1, 7), "inst_map": np.zeros((1, 7))})
    assert read_mask(tmp_path / "ok.mat", "consep").tolist() == [[0, 1, 2, 3, 3, 4, 4]]  # CoNSeP's 7 types -> eva's 5


def test_a_bad_path_after_a_report_spanning_lines_is_named_by_its_own_line(tmp_path):
    root = tmp_path / "data" / "reports"
    root.mkdir(parents=True)
    bilevel(8, 8).save(root / "a.png")
    (root / "table.csv").write_text('image,split,report\na.png,train,"Invasive carcinoma.\nMargins clear."\n'
                                    '/etc/passwd,train,Benign.\n')
    spec = CsvDataset(source="csv", path="reports/table.csv", text_column="report")
    with pytest.raises(HarnessError, match=r"table.csv: line 4, column 'image': '/etc/passwd' is not a path inside"):
        open_source("reports", spec, context(tmp_path)).records("train")


def test_a_table_saved_by_excel_with_a_byte_order_mark_is_read(tmp_path):
    """Excel's "CSV UTF-8" starts the file with a byte-order mark, which was read into the first
    column's name: 'image' was "missing" from a header that shows it."""
    root = tmp_path / "data" / "cohort"
    root.mkdir(parents=True)
    bilevel(8, 8).save(root / "0.png")
    (root / "table.csv").write_bytes("image,split,grade\r\n0.png,train,low\r\n".encode("utf-8-sig"))
    (root / "slides.csv").write_bytes("slide,patient,label\r\na.tiff,P1,benign\r\n".encode("utf-8-sig"))
    source = open_source("cohort", CsvDataset(source="csv", path="cohort/table.csv", label_column="grade"),
                         context(tmp_path))
    assert source.images("train")[0].size == (8, 8) and source.class_names() == ["low"]
    slides = open_source("slides", WsiDataset(source="wsi", path="cohort/slides.csv", label_column="label"),
                         context(tmp_path))
    assert slides.class_names() == ["benign"]


@pytest.mark.parametrize("table", ["table", "slides"])
@pytest.mark.parametrize("damage, message", [
    ("grade\ncafé".encode("cp1252"), r"not UTF-8 text \(an undecodable byte( after line \d+)?\); save the {what} as UTF-8"),
    (b"x" * 200_000, r"line 3 is not readable CSV \(field larger than field limit \(131072\)\); fix the {what}"),
])
def test_a_table_that_is_not_utf8_csv_is_one_line_naming_it(tmp_path, table, damage, message):
    """A table saved in Windows' code page, or with a cell over csv's limit: was Python's words
    (UnicodeDecodeError, csv.Error), without the file's name."""
    root = tmp_path / "data" / "cohort"
    root.mkdir(parents=True)
    header = b"image,split,grade\n0.png,train,low\n" if table == "table" else b"slide,patient,label\na.tiff,P1,b\n"
    (root / f"{table}.csv").write_bytes(header + damage + b"\n")
    if table == "table":
        source, what = open_source("c", CsvDataset(source="csv", path="cohort/table.csv", label_column="grade"),
                                   context(tmp_path)), "table"
    else:
        source, what = open_source("c", WsiDataset(source="wsi", path="cohort/slides.csv", label_column="label"),
                                   context(tmp_path)), "slide table"
    with pytest.raises(HarnessError, match=f"{table}.csv: " + message.format(what=what)):
        source.class_names()


def test_a_fifo_named_as_a_table_is_refused_without_blocking(tmp_path):
    root = tmp_path / "data" / "cohort"
    root.mkdir(parents=True)
    os.mkfifo(root / "table.csv")  # opened for reading, it waited for a writer for ever
    source = open_source("c", CsvDataset(source="csv", path="cohort/table.csv", label_column="grade"), context(tmp_path))
    with pytest.raises(HarnessError, match=r"table.csv: the table is not a regular file \(a folder, a FIFO or a device\)"):
        source.class_names()


def test_a_slide_listed_twice_is_one_line_naming_both_lines(tmp_path):
    """Read on, the slide was embedded and weighted twice, or (under two patients) sat in a train
    and a test fold at once."""
    root = tmp_path / "data" / "cohort"
    root.mkdir(parents=True)
    (root / "slides.csv").write_text("slide,patient,label\nslides/a.tiff,P1,benign\nslides/b.tiff,P2,tumour\n"
                                     "./slides/a.tiff,P3,tumour\n")
    spec = WsiDataset(source="wsi", path="cohort/slides.csv", label_column="label")
    with pytest.raises(HarnessError, match=r"slides.csv: line 4 names slide './slides/a.tiff' again \(first on line "
                                           r"2\); a slide table has one row per slide: remove one"):
        open_source("cohort", spec, context(tmp_path)).table()


def test_a_patient_whose_slides_disagree_on_survival_is_one_line(tmp_path):
    """The patient-level C-index read the first slide's time and event and dropped the other."""
    root = tmp_path / "data" / "cohort"
    root.mkdir(parents=True)
    (root / "slides.csv").write_text("slide,patient,time,event\na.tiff,P1,12.5,1\nb.tiff,P2,30,0\nc.tiff,P1,40,1\n")
    spec = WsiDataset(source="wsi", path="cohort/slides.csv", time_column="time", event_column="event")
    with pytest.raises(HarnessError, match=r"slides.csv: patient 'P1' has time 12.5 on line 2 and 40 on line 4; "
                                           "survival is per patient"):
        open_source("cohort", spec, context(tmp_path)).table()


def test_an_image_in_two_splits_of_a_table_is_one_line_and_repeats_within_one_are_read(tmp_path):
    root = tmp_path / "data" / "cohort"
    root.mkdir(parents=True)
    for name in ("0.png", "1.png"):
        bilevel(8, 8).save(root / name)
    spec = CsvDataset(source="csv", path="cohort/table.csv", label_column=None, question_column="q",
                      answer_column="a")
    (root / "table.csv").write_text("image,split,q,a\n0.png,train,Tumour?,yes\n0.png,train,Which organ?,colon\n"
                                    "1.png,test,Tumour?,no\n")
    assert len(open_source("c", spec, context(tmp_path)).records("train")) == 2  # a question each: one split
    (root / "table.csv").write_text("image,split,q,a\n0.png,train,Tumour?,yes\n1.png,test,Tumour?,no\n"
                                    "./0.png,test,Which organ?,colon\n")
    with pytest.raises(HarnessError, match=r"table.csv: line 4 puts image './0.png' in split 'test', line 2 in "
                                           "'train': an image in two splits leaks between them; keep it in one"):
        open_source("c", spec, context(tmp_path)).records("test")


def test_an_archive_unpacked_from_a_mac_or_browsed_in_jupyter_reads_as_its_images(tmp_path):
    """macOS archives carry a `._<name>` AppleDouble copy beside every image (and a __MACOSX folder),
    Jupyter leaves .ipynb_checkpoints: a `._` copy failed the task as an unreadable image, and a
    hidden folder became a class."""
    from tests.harness.test_segmentation_sources import _source, write_consep

    root = tmp_path / "data" / "mine"
    for split in ("train", "test"):
        for name in ("a", "b"):
            (root / split / name).mkdir(parents=True)
            bilevel(8, 8).save(root / split / name / "0.png")
            (root / split / name / "._0.png").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
        (root / split / ".ipynb_checkpoints").mkdir()
        (root / split / "__MACOSX" / "a").mkdir(parents=True)
        (root / split / "__MACOSX" / "a" / "._0.png").write_bytes(b"\x00\x05\x16\x07")
    source = open_source("mine", ImageFolderDataset(source="imagefolder", path="mine", splits=["train", "test"]),
                         context(tmp_path))
    assert source.class_names() == ["a", "b"] and source.labels("train").tolist() == [0, 1]
    assert [image.size for image in source.images("test")] == [(8, 8), (8, 8)]
    consep = tmp_path / "data" / "consep"
    write_consep(consep, np.random.default_rng(0))
    (consep / "Train" / "Images" / "._train_1.png").write_bytes(b"\x00\x05\x16\x07")  # had no Labels/._train_1.mat
    assert len(_source(tmp_path, "consep").images("train")) == 8


def test_an_image_copied_into_two_splits_is_one_line_naming_both_copies(tmp_path):
    """A test image that is a byte-for-byte copy of a training image (a copy made while sorting files
    into split folders, or the same file under two names in a table) was scored as unseen. Files of
    one size and one first 4 KiB that differ further on are not copies; copies within a split are
    not a leak."""
    import shutil

    root = tmp_path / "data" / "mine"
    base = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    for index, (split, label) in enumerate([("train", "a"), ("train", "b"), ("test", "a"), ("test", "b")]):
        pixels = base.copy()
        pixels[0, 0] = index  # BMP stores rows bottom-up: the files share size and first 4 KiB, not content
        (root / split / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / split / label / f"{index}.bmp")
    assert len({p.read_bytes()[:4096] for p in root.rglob("*.bmp")}) == 1
    spec = ImageFolderDataset(source="imagefolder", path="mine", splits=["train", "test"])
    open_source("mine", spec, context(tmp_path)).prepare()
    shutil.copy(root / "train" / "a" / "0.bmp", root / "train" / "b" / "copy.bmp")
    open_source("mine", spec, context(tmp_path)).prepare()  # within one split
    shutil.copy(root / "train" / "a" / "0.bmp", root / "test" / "b" / "copy.bmp")
    with pytest.raises(HarnessError) as error:
        open_source("mine", spec, context(tmp_path)).prepare()
    assert str(error.value) == (
        f"{root}: 'train/a/0.bmp' (split 'train') and 'test/b/copy.bmp' (split 'test') are one image, byte for "
        "byte: an image in two splits leaks between them and inflates the score; keep one copy")
    shutil.copy(root / "train" / "b" / "1.bmp", root / "test" / "a" / "copy1.bmp")
    with pytest.raises(HarnessError, match=r"\(2 images in all are in two splits\)"):
        open_source("mine", spec, context(tmp_path)).prepare()

    (root / "table.csv").write_text("image,split,label\ntrain/a/0.bmp,train,a\ntrain/b/1.bmp,train,b\n"
                                    "test/a/2.bmp,test,a\ntest/b/copy.bmp,test,b\n")
    table = CsvDataset(source="csv", path="mine/table.csv", label_column="label")
    with pytest.raises(HarnessError, match=re.escape(f"{root / 'table.csv'}: 'test/b/copy.bmp' (split 'test') and "
                                                     "'train/a/0.bmp' (split 'train') are one image")):
        open_source("t", table, context(tmp_path)).prepare()


def test_a_dangling_link_named_as_an_image_is_named_when_read_not_when_fingerprinted(tmp_path):
    """A link whose target is gone has no size: the dataset's fingerprint (a Python error before)
    takes it as it is, and reading it names the file and what to do."""
    tile = Image.fromarray(np.full((16, 16, 3), 7, np.uint8))
    source, folder = folder_source(tmp_path, {"0.png": tile})
    (folder / "1.png").symlink_to(tmp_path / "gone.png")
    assert len(source.fingerprint()) == 16 and len(source.split_fingerprint("train")) == 16
    with pytest.raises(HarnessError, match=r"1\.png: no such file; remove or replace the file"):
        source.images("train")[1]
