"""CoNSeP, MoNuSAC and BCSS read from small fixtures written in their publishers' layouts."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from harness.errors import HarnessError
from harness.registry import SegmentationFolderDataset
from harness.sources import DataContext, open_source


def _source(tmp_path: Path, layout: str, **keys):
    spec = SegmentationFolderDataset(source="masks", layout=layout, path=layout, **keys)
    return open_source(layout, spec, DataContext(cache_dir=tmp_path / "cache", data_root=tmp_path / "data"))


def _rgb(rng, h, w):
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def write_consep(root: Path, rng) -> dict[str, np.ndarray]:
    """Two training images and one test image of 500 x 500 px (2 x 2 cells of 250) with HoVer-Net's
    7 nucleus types in `type_map`."""
    types = {}
    for folder, names in (("Train", ["train_1", "train_2"]), ("Test", ["test_1"])):
        (root / folder / "Images").mkdir(parents=True)
        (root / folder / "Labels").mkdir(parents=True)
        for name in names:
            Image.fromarray(_rgb(rng, 500, 500)).save(root / folder / "Images" / f"{name}.png")
            type_map = rng.integers(0, 8, (500, 500)).astype(np.int32)
            savemat(root / folder / "Labels" / f"{name}.mat",
                    {"type_map": type_map, "inst_map": np.zeros((500, 500), np.int32)})
            types[name] = type_map
    return types


def test_consep_cells_and_grouped_classes(tmp_path):
    types = write_consep(tmp_path / "data" / "consep", np.random.default_rng(0))
    source = _source(tmp_path, "consep")
    assert source.availability().ok
    assert source.split_names() == ["train", "val"]
    assert source.class_names() == ["background", "other", "inflammatory", "epithelial", "spindle-shaped"]
    images, masks = source.images("train"), source.masks("train")
    assert len(images) == len(masks) == 8  # 2 images x 2 x 2 cells
    assert images[0].shape == (250, 250, 3) and masks[0].shape == (250, 250)
    # the second cell of train_1 is its top-right quarter; classes 3, 4 -> 3 and 5, 6, 7 -> 4
    expected = types["train_1"][0:250, 250:500]
    expected = np.where(expected > 4, 4, np.where(expected == 4, 3, expected))
    np.testing.assert_array_equal(masks[1], expected)
    image = np.asarray(Image.open(tmp_path / "data/consep/Train/Images/train_1.png"))
    np.testing.assert_array_equal(images[1], image[0:250, 250:500])
    assert len(source.images("val")) == 4


def test_consep_missing_label_is_one_line(tmp_path):
    root = tmp_path / "data" / "consep"
    write_consep(root, np.random.default_rng(0))
    (root / "Train" / "Labels" / "train_2.mat").unlink()
    with pytest.raises(HarnessError, match=r"train_2.mat: missing"):
        _source(tmp_path, "consep").split_names()


def _monusac_xml(path: Path, regions: list[tuple[str, list[tuple[float, float]]]]) -> None:
    """MoNuSAC's annotation format: one Annotation per class, its first child the Attributes
    (the class name), Regions under a Regions element, each with Attributes then Vertices."""
    parts = ["<Annotations>"]
    for label, vertices in regions:
        points = "".join(f'<Vertex X="{x}" Y="{y}" Z="0"/>' for x, y in vertices)
        parts.append(f'<Annotation Id="1"><Attributes><Attribute Name="{label}" Id="0" Value=""/></Attributes>'
                     f'<Regions><RegionAttributeHeaders/><Region Id="1"><Attributes/><Vertices>{points}'
                     "</Vertices></Region></Regions><Plots/></Annotation>")
    parts.append("</Annotations>")
    path.write_text("".join(parts))


def test_monusac_polygons_resized_and_cropped(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "data" / "monusac"
    train = root / "MoNuSAC_images_and_annotations" / "TCGA-55-1594-01Z-00-DX1"
    test = root / "MoNuSAC Testing Data and Annotations" / "TCGA-2Z-A9JG-01Z-00-DX1"
    train.mkdir(parents=True)
    test.mkdir(parents=True)
    Image.fromarray(_rgb(rng, 100, 200)).save(train / "TCGA-55-1594-01Z-00-DX1_003.tif")
    _monusac_xml(train / "TCGA-55-1594-01Z-00-DX1_003.xml",
                 [("Lymphocyte", [(90, 40), (110, 40), (110, 60), (90, 60)]),  # a square in the centre
                  ("Neutrophil", [(0, 0), (20, 0), (20, 20), (0, 20)])])  # cut away by the centre crop
    Image.fromarray(_rgb(rng, 64, 64)).save(test / "TCGA-2Z-A9JG-01Z-00-DX1_1.tif")
    _monusac_xml(test / "TCGA-2Z-A9JG-01Z-00-DX1_1.xml", [("Something else", [(10, 10), (30, 10), (30, 30)])])
    source = _source(tmp_path, "monusac", size=50)
    assert source.split_names() == ["train", "test"]
    mask = source.masks("train")[0]
    assert mask.shape == (50, 50) and source.images("train")[0].shape == (50, 50, 3)
    # 100 x 200 -> 50 x 100, centre crop of 50: the lymphocyte square (x 90-110, y 40-60) lands at 20-30
    assert set(np.unique(mask)) == {0, 2}
    assert mask[25, 25] == 2 and mask[5, 5] == 0
    assert np.unique(source.masks("test")[0]).tolist() == [0, 5]  # an unknown label is "ambiguous"


def test_bcss_institute_splits_and_groups(tmp_path):
    rng = np.random.default_rng(2)
    root = tmp_path / "data" / "bcss"
    (root / "rgbs_colorNormalized").mkdir(parents=True)
    (root / "masks").mkdir()
    names = {"TCGA-A2-A0CM-DX1_xmin18562_ymin56852_MPP-0.2500.png": "train",
             "TCGA-C8-A3XY-DX1_xmin76297_ymin35510_MPP-0.2500.png": "val",
             "TCGA-OL-A5D6-DX1_xmin115108_ymin40554_MPP-0.2500.png": "test"}
    codes = {}
    for name in names:
        Image.fromarray(_rgb(rng, 900, 448)).save(root / "rgbs_colorNormalized" / name)
        codes[name] = np.repeat(np.repeat(rng.integers(0, 22, (450, 224)), 2, 0), 2, 1)[:900, :448].astype(np.uint8)
        Image.fromarray(codes[name]).save(root / "masks" / name)
    source = _source(tmp_path, "bcss")
    assert source.split_names() == ["train", "val", "test"]
    assert len(source.masks("train")) == 2  # 900 x 448 at 448 px cells: 2 rows, 1 column
    mask = source.masks("train")[1]
    assert mask.shape == (224, 224)
    original = codes["TCGA-A2-A0CM-DX1_xmin18562_ymin56852_MPP-0.2500.png"][448:896:2, 0:448:2]
    grouped = np.full(original.shape, 5)
    for code, group in {0: 0, 1: 1, 19: 1, 20: 1, 2: 2, 3: 3, 10: 3, 11: 3, 4: 4}.items():
        grouped[original == code] = group
    np.testing.assert_array_equal(mask, grouped)
    assert source.images("test")[0].shape == (224, 224, 3)


def test_absent_dataset_names_the_folder(tmp_path):
    availability = _source(tmp_path, "bcss", homepage="https://github.com/PathologyDataScience/BCSS").availability()
    assert not availability.ok
    assert "rgbs_colorNormalized" in availability.reason and "PathologyDataScience" in availability.reason


def test_corrupt_mask_is_one_line(tmp_path):
    root = tmp_path / "data" / "consep"
    write_consep(root, np.random.default_rng(0))
    (root / "Test" / "Labels" / "test_1.mat").write_bytes(b"not a mat file")
    with pytest.raises(HarnessError, match=r"test_1.mat: unreadable mask"):
        _source(tmp_path, "consep").masks("val")[0]


def test_a_mask_smaller_than_its_image_is_one_line(tmp_path):
    """A BCSS mask file cut short names the file and its image's size (it was stretched to the
    cell's size before); items of two sizes name the item, not numpy's 'all
    input arrays must have the same shape'."""
    from harness.runner import dense_targets

    rng = np.random.default_rng(3)
    root = tmp_path / "data" / "bcss"
    (root / "rgbs_colorNormalized").mkdir(parents=True)
    (root / "masks").mkdir()
    name = "TCGA-A2-A0CM-DX1_xmin1_ymin1_MPP-0.2500.png"
    Image.fromarray(_rgb(rng, 896, 448)).save(root / "rgbs_colorNormalized" / name)
    Image.fromarray(np.zeros((600, 448), np.uint8)).save(root / "masks" / name)  # 600 rows, not 896
    with pytest.raises(HarnessError, match=rf"{name}: a mask of 600 x 448 px for an image of 896 x 448 px \({name}\)"):
        dense_targets(_source(tmp_path, "bcss"), "train", "bcss")

    class Uneven:  # a source whose items differ in size
        def masks(self, split):
            return [np.zeros((4, 4), np.uint8), np.zeros((5, 4), np.uint8)]

        def images(self, split):
            return [np.zeros((4, 4, 3), np.uint8)] * 2

    with pytest.raises(HarnessError, match=r"split 'train': mask 1 is \(5, 4\), item 0 is \(4, 4\)"):
        dense_targets(Uneven(), "train", "mine")


def _bcss_pair(root: Path, mask, image_shape=(896, 448)) -> None:
    (root / "rgbs_colorNormalized").mkdir(parents=True)
    (root / "masks").mkdir()
    name = "TCGA-A2-A0CM-DX1_xmin1_ymin1_MPP-0.2500.png"
    Image.fromarray(_rgb(np.random.default_rng(4), *image_shape)).save(root / "rgbs_colorNormalized" / name)
    Image.fromarray(mask).save(root / "masks" / name)


def _consep_types(root: Path, type_map) -> None:
    write_consep(root, np.random.default_rng(0))
    savemat(root / "Train" / "Labels" / "train_1.mat", {"type_map": type_map})


MASK_DAMAGES = {  # each was read on: grouped with a class, wrapped to 255, drawn, or cut out of register
    "consep type 9": ("consep", lambda r: _consep_types(r, np.full((500, 500), 9, np.int32)),
                      r"train_1.mat: the value 9 where CoNSeP's type_map holds nucleus types 0 to 7"),
    "consep type -1": ("consep", lambda r: _consep_types(r, np.full((500, 500), -1, np.int32)),
                       r"train_1.mat: the value -1 where"),
    "consep type 2.5": ("consep", lambda r: _consep_types(r, np.full((500, 500), 2.5)), r"train_1.mat: the value 2.5 where"),
    "consep type NaN": ("consep", lambda r: _consep_types(r, np.full((500, 500), np.nan)), r"train_1.mat: the value nan where"),
    "consep mask larger than its image": ("consep", lambda r: _consep_types(r, np.ones((1000, 1000), np.int32)),
                                          r"train_1.mat: a mask of 1000 x 1000 px for an image of 500 x 500 px"),
    "bcss code 300": ("bcss", lambda r: _bcss_pair(r, np.full((896, 448), 300, np.uint16)),
                      r"the value 300 where BCSS's masks hold class codes 0 to 21"),
    "bcss RGB mask": ("bcss", lambda r: _bcss_pair(r, np.zeros((896, 448, 3), np.uint8)),
                      r"a mask of 3 channels; BCSS's masks are one channel of class codes"),
    "bcss mask larger than its image": ("bcss", lambda r: _bcss_pair(r, np.ones((1792, 896), np.uint8)),
                                        r"a mask of 1792 x 896 px for an image of 896 x 448 px"),
}


@pytest.mark.parametrize("damage", MASK_DAMAGES)
def test_a_mask_of_other_codes_or_size_is_one_line_naming_it(tmp_path, damage):
    from harness.runner import dense_targets

    layout, write, message = MASK_DAMAGES[damage]
    write(tmp_path / "data" / layout)
    with pytest.raises(HarnessError, match=message) as raised:
        dense_targets(_source(tmp_path, layout), "train", layout)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("vertex", ["nan", "inf"])
def test_a_monusac_vertex_that_is_not_a_point_is_one_line(tmp_path, vertex):
    folder = tmp_path / "data" / "monusac" / "MoNuSAC_images_and_annotations" / "P1"
    folder.mkdir(parents=True)
    Image.fromarray(_rgb(np.random.default_rng(5), 64, 64)).save(folder / "P1_1.tif")
    _monusac_xml(folder / "P1_1.xml", [("Epithelial", [(float(vertex), 1), (10, 1), (10, 10)])])
    with pytest.raises(HarnessError, match=rf"P1_1.xml: a vertex at \({vertex}, 1.0\) is not a point"):
        _source(tmp_path, "monusac", size=32).masks("train")[0]


def test_an_image_smaller_than_one_cell_is_left_out_and_said(tmp_path, capsys):
    root = tmp_path / "data" / "bcss"
    _bcss_pair(root, np.zeros((896, 448), np.uint8))
    Image.fromarray(_rgb(np.random.default_rng(6), 300, 300)).save(
        root / "rgbs_colorNormalized" / "TCGA-E2-A1B1-DX1_small.png")
    Image.fromarray(np.zeros((300, 300), np.uint8)).save(root / "masks" / "TCGA-E2-A1B1-DX1_small.png")
    source = _source(tmp_path, "bcss")
    assert source.split_names() == ["train"]  # the small test image gave no item
    assert "1 image(s) smaller than one 448 px cell are left out (the first: TCGA-E2-A1B1-DX1_small.png)" in \
        " ".join(capsys.readouterr().err.split())


def test_an_image_copied_into_another_split_is_one_line_naming_both(tmp_path):
    """A CoNSeP test image copied among the training images (under another name, with its labels):
    its cells would be scored as test cells the decoder trained on. Refused before anything is
    embedded, naming both files; the folders as published are read."""
    root = tmp_path / "data" / "consep"
    write_consep(root, np.random.default_rng(0))
    _source(tmp_path, "consep").prepare()
    (root / "Train" / "Images" / "train_3.png").write_bytes((root / "Test" / "Images" / "test_1.png").read_bytes())
    (root / "Train" / "Labels" / "train_3.mat").write_bytes((root / "Test" / "Labels" / "test_1.mat").read_bytes())
    with pytest.raises(HarnessError, match=r"'Train/Images/train_3.png' \(split 'train'\) and 'Test/Images/test_1.png' "
                                           r"\(split 'val'\) are one image, byte for byte"):
        _source(tmp_path, "consep").prepare()
