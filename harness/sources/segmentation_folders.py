"""Segmentation datasets in the folder layouts their publishers ship (and eva reads):

  consep   <root>/Train/Images/train_<k>.png, <root>/Train/Labels/train_<k>.mat (`type_map`), and
           Test/ likewise. 1000 x 1000 px at 0.25 um/px; items are the 250 x 250 px cells of a grid
           over each image (eva's GridSampler at 0.25 um/px). Classes as HoVer-Net and eva group
           them: 3 and 4 (epithelial), 5, 6 and 7 (spindle-shaped). Splits: train (Train), val (Test).
  monusac  <root>/MoNuSAC_images_and_annotations/<patient>/<image>.tif + .xml, and
           <root>/MoNuSAC Testing Data and Annotations/ likewise. Each image is one item, its mask
           the XML's polygons filled with their class (an unknown label is "Ambiguous", which the
           test annotations add); resized (shorter side) and centre-cropped to `size` (eva's
           ResizeAndCrop). Splits: train, test.
  bcss     <root>/rgbs_colorNormalized/<TCGA-SS-...>.png, <root>/masks/<same name>.png, at 0.25 um/px.
           Items are 2 x 2-reduced 448 px cells of a grid (224 px at 0.5 um/px, eva's target), at
           most `max_items_per_image` per image; classes grouped as the challenge baseline (and eva)
           group them. Splits by the institute in the file name (eva's: validation BH C8 A8 A1 E9,
           test OL LL E2 EW GM S3, the rest training).
Every item of a dataset has one size, so a split stacks into arrays.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from rich.markup import escape

from harness.errors import HarnessError
from harness.registry import SegmentationFolderDataset
from harness.sources.base import Availability, TileSource, digest
from harness.sources.image_files import MAX_IMAGE_PIXELS, is_hidden, open_image, rgb_image
from harness.sources.split_copies import refuse_copies_across_splits
from harness.terminal import console

Layout = Literal["consep", "monusac", "bcss"]  # SegmentationFolderDataset.layout

CLASSES: dict[str, list[str]] = {
    "consep": ["background", "other", "inflammatory", "epithelial", "spindle-shaped"],
    "monusac": ["background", "epithelial", "lymphocyte", "neutrophil", "macrophage", "ambiguous"],
    "bcss": ["outside_roi", "tumor", "stroma", "inflammatory", "necrosis", "other"],
}
MONUSAC_LABELS = {"Epithelial": 1, "Lymphocyte": 2, "Neutrophil": 3, "Macrophage": 4, "Ambiguous": 5}
MONUSAC_FOLDERS = {"train": "MoNuSAC_images_and_annotations", "test": "MoNuSAC Testing Data and Annotations"}
# BCSS's original codes -> eva's groups (everything not named here is "other", 5)
BCSS_GROUPS = {0: 0, 19: 1, 20: 1, 1: 1, 2: 2, 3: 3, 10: 3, 11: 3, 4: 4}
BCSS_VAL = {"BH", "C8", "A8", "A1", "E9"}
BCSS_TEST = {"OL", "LL", "E2", "EW", "GM", "S3"}
REPLACE = "replace the file from the dataset"
CELL = {"consep": 250, "bcss": 448}  # the side of a grid layout's cells, in the files' pixels


class SegmentationFolderSource(TileSource):
    spec: SegmentationFolderDataset

    def __init__(self, name, spec, context):
        super().__init__(name, spec, context)
        self._checked = False  # no image in two splits (prepare)

    @property
    def root(self) -> Path:
        return (self.context.data_root / self.spec.path).expanduser()

    def _marker(self) -> Path:
        return self.root / {"consep": "Train/Images", "monusac": MONUSAC_FOLDERS["train"],
                            "bcss": "rgbs_colorNormalized"}[self.spec.layout]

    def availability(self) -> Availability:
        if self._marker().is_dir():
            return Availability(ok=True)
        how = self.spec.instructions or (f"get it from {self.spec.homepage}" if self.spec.homepage else
                                         "see the dataset's description (harness list)")
        return Availability(ok=False, reason=f"no {self.spec.layout} folder at {self._marker()}: {how}; "
                                             "or pass --data-root")

    def download(self) -> str:
        return self.availability().reason or f"{self.name}: present at {self.root}"

    def class_names(self) -> list[str]:
        return list(CLASSES[self.spec.layout])

    @cached_property
    def _items(self) -> dict[str, list[tuple[Path, Path, tuple[int, int, int]]]]:
        """split -> [(image file, mask file, (left, top, side))] in a fixed order."""
        reader = {"consep": _consep_items, "monusac": _monusac_items, "bcss": _bcss_items}[self.spec.layout]
        small: list[Path] = []  # images smaller than one grid cell: no item
        items = reader(self.root, self.spec, small)
        if small:
            console.print(f"[yellow]warning[/yellow] {escape(str(self.root))}: {len(small)} image(s) smaller than one "
                          f"{CELL[self.spec.layout]} px cell are left out (the first: {escape(small[0].name)})")
        if not any(items.values()):
            raise HarnessError(f"{self.root}: no images in the {self.spec.layout} layout (see docs/protocols.md, segmentation)")
        return items

    def split_names(self) -> list[str]:
        return [split for split, items in self._items.items() if items]

    def prepare(self) -> None:
        """An image file in two splits (a test image copied among the training images) is refused
        (split_copies), once per run."""
        if not self._checked:
            refuse_copies_across_splits({split: [image for image, _, _ in items] for split, items in self._items.items()},
                                        self.root, str(self.root))
            self._checked = True

    def fingerprint(self) -> str:
        return digest({"layout": self.spec.layout, "size": self.spec.size, "max": self.spec.max_items_per_image,
                       "items": {s: [(str(i.relative_to(self.root)), box, _stat(i), _stat(m)) for i, m, box in items]
                                 for s, items in self._items.items()}})

    def labels(self, split: str) -> None:
        return None

    def images(self, split: str) -> "MaskedItems":
        return MaskedItems(self._items[split], self.spec, "image")

    def masks(self, split: str) -> "MaskedItems":
        return MaskedItems(self._items[split], self.spec, "mask")


def _stat(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, int(stat.st_mtime)


class MaskedItems:
    """The images (or masks) of a split, read and cut on access (picklable for DataLoader workers)."""

    def __init__(self, items, spec: SegmentationFolderDataset, what: Literal["image", "mask"]):
        self.items, self.spec, self.what = items, spec, what

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> np.ndarray:
        image_path, mask_path, box = self.items[index]
        path = image_path if self.what == "image" else mask_path
        array = read_rgb(path) if self.what == "image" else read_mask(path, self.spec.layout)
        if self.what == "mask":
            check_mask_size(array, mask_path, image_path)
        left, top, side = box
        if side and (array.shape[0] < top + side or array.shape[1] < left + side):  # a grid cell past its edge
            raise HarnessError(f"{path}: {array.shape[0]} x {array.shape[1]} px is smaller than its image (a cell "
                               f"reaches {top + side} x {left + side}); replace the file from the dataset")
        return cut(array, box, self.spec, nearest=self.what == "mask")


def check_mask_size(mask: np.ndarray, path: Path, image_path: Path) -> None:
    """A mask covers its image pixel for pixel: one of another size (a larger one was cut from its
    top-left corner, out of register with the image) is one line naming both files."""
    with open_image(image_path, REPLACE) as image:
        width, height = image.size
    if mask.shape != (height, width):
        raise HarnessError(f"{path}: a mask of {' x '.join(map(str, mask.shape))} px for an image of {height} x "
                           f"{width} px ({image_path.name}); {REPLACE}")


def read_rgb(path: Path) -> np.ndarray:
    with open_image(path, REPLACE) as image:
        return np.asarray(rgb_image(image))


def read_mask(path: Path, layout: Layout) -> np.ndarray:
    """The mask of one image, as the dataset's class indices."""
    try:
        if layout == "consep":
            from scipy.io import loadmat, whosmat

            # the declared shape first (read from the header): a compressed variable may expand to any size
            shape = next((shape for name, shape, _ in whosmat(path) if name == "type_map"), None)
            if shape is None or len(shape) != 2 or shape[0] * shape[1] > MAX_IMAGE_PIXELS:
                raise HarnessError(f"{path}: no 'type_map' of at most {MAX_IMAGE_PIXELS:,} px (found {shape}); "
                                   f"{REPLACE}")
            types = class_codes(np.asarray(loadmat(path, variable_names=["type_map"])["type_map"]), 7, path,
                                "CoNSeP's type_map holds nucleus types 0 to 7")
            return np.where(types > 4, 4, np.where(types == 4, 3, types)).astype(np.uint8)
        if layout == "bcss":
            with open_image(path, REPLACE) as image:
                codes = np.asarray(image)
            if codes.ndim != 2:
                raise HarnessError(f"{path}: a mask of {codes.shape[2]} channels; BCSS's masks are one channel of "
                                   f"class codes: {REPLACE}")
            codes = class_codes(codes, 21, path, "BCSS's masks hold class codes 0 to 21")
            grouped = np.full(codes.shape, 5, np.uint8)
            for code, group in BCSS_GROUPS.items():
                grouped[codes == code] = group
            return grouped
        return monusac_mask(path)
    except HarnessError:
        raise
    except Exception as error:  # noqa: BLE001 - a corrupt annotation is one line naming the file
        raise HarnessError(f"{path}: unreadable mask ({type(error).__name__}: {error}); replace the file "
                           "from the dataset") from None


def class_codes(values: np.ndarray, top: int, path: Path, meaning: str) -> np.ndarray:
    """A mask's class codes as int64, each a whole number from 0 to `top`; any other value (-1, 255,
    2.5, NaN) is one line naming the file, where it was grouped with a class (or wrapped to 255)."""
    with np.errstate(invalid="ignore"):
        codes = values.astype(np.int64) if values.dtype.kind in "biuf" else None
        wrong = codes is None or (values != codes).any() or (codes < 0).any() or (codes > top).any()
    if wrong:
        if codes is None:
            odd = f"values of type {values.dtype}"
        else:
            bad = values[(values != codes) | (codes < 0) | (codes > top)]
            odd = f"the value {bad.flat[0]}"
        raise HarnessError(f"{path}: {odd} where {meaning}; {REPLACE}")
    return codes


def monusac_mask(xml_path: Path) -> np.ndarray:
    """MoNuSAC's XML polygons filled with their class, over the image's size (the .tif beside it)."""
    from xml.etree import ElementTree

    from PIL import ImageDraw

    with open_image(xml_path.with_suffix(".tif"), REPLACE) as image:  # bounds the canvas drawn below
        width, height = image.size
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    root = ElementTree.parse(xml_path).getroot()
    for annotation in root:
        names = [item.attrib.get("Name", "") for item in annotation[0]] if len(annotation) else []
        label = MONUSAC_LABELS.get(names[0] if names else "", MONUSAC_LABELS["Ambiguous"])
        for region in (item for child in annotation for item in child if item.tag == "Region"):
            vertices = [(float(v.attrib["X"]), float(v.attrib["Y"])) for v in region.iter("Vertex")]
            odd = next((vertex for vertex in vertices if not np.isfinite(vertex).all()), None)
            if odd:  # PIL drew a polygon through NaN or inf somewhere
                raise HarnessError(f"{xml_path}: a vertex at {odd} is not a point; {REPLACE}")
            if len(vertices) >= 3:
                draw.polygon(vertices, fill=label)
    return np.asarray(canvas)


def cut(array: np.ndarray, box: tuple[int, int, int], spec: SegmentationFolderDataset, nearest: bool) -> np.ndarray:
    """One item of an image or mask: its grid cell (consep, bcss) or the whole image resized and
    centre-cropped (monusac), at the dataset's item size."""
    resample = Image.NEAREST if nearest else Image.BILINEAR
    if spec.layout == "monusac":
        h, w = array.shape[:2]
        scale = spec.size / min(h, w)
        image = Image.fromarray(array).resize((max(spec.size, round(w * scale)), max(spec.size, round(h * scale))),
                                              resample)
        left, top = (image.width - spec.size) // 2, (image.height - spec.size) // 2
        return np.asarray(image.crop((left, top, left + spec.size, top + spec.size)))
    left, top, side = box
    cell = array[top : top + side, left : left + side]
    if spec.layout == "bcss":  # 0.25 -> 0.5 um/px
        return np.asarray(Image.fromarray(cell).resize((side // 2, side // 2), resample))
    return np.ascontiguousarray(cell)


def _grid(path: Path, side: int, small: list[Path], limit: int | None = None) -> list[tuple[int, int, int]]:
    with open_image(path, REPLACE) as image:
        width, height = image.size
    boxes = [(x, y, side) for y in range(0, height - side + 1, side) for x in range(0, width - side + 1, side)]
    if not boxes:
        small.append(path)
    return boxes[:limit] if limit else boxes


def _consep_items(root: Path, spec, small: list[Path]) -> dict[str, list]:
    items = {}
    for split, folder in (("train", "Train"), ("val", "Test")):
        items[split] = []
        for image in sorted(p for p in (root / folder / "Images").glob("*.png") if not is_hidden(p)):
            label = root / folder / "Labels" / f"{image.stem}.mat"
            if not label.is_file():
                raise HarnessError(f"{label}: missing (CoNSeP pairs every image with its Labels/<name>.mat)")
            items[split] += [(image, label, box) for box in _grid(image, CELL["consep"], small)]
    return items


def _monusac_items(root: Path, spec, small: list[Path]) -> dict[str, list]:
    items = {}
    for split, folder in MONUSAC_FOLDERS.items():
        items[split] = []
        for image in sorted(p for p in (root / folder).glob("*/*.tif") if not is_hidden(p) and not is_hidden(p.parent)):
            xml = image.with_suffix(".xml")
            if not xml.is_file():
                raise HarnessError(f"{xml}: missing (MoNuSAC pairs every .tif with its .xml annotation)")
            items[split].append((image, xml, (0, 0, 0)))
    return items


def _bcss_items(root: Path, spec, small: list[Path]) -> dict[str, list]:
    items: dict[str, list] = {"train": [], "val": [], "test": []}
    for image in sorted(p for p in (root / "rgbs_colorNormalized").glob("*.png") if not is_hidden(p)):
        mask = root / "masks" / image.name
        if not mask.is_file():
            raise HarnessError(f"{mask}: missing (BCSS pairs every image with masks/<same name>)")
        parts = image.stem.split("-")
        institute = parts[1] if len(parts) > 1 else ""
        split = "test" if institute in BCSS_TEST else "val" if institute in BCSS_VAL else "train"
        items[split] += [(image, mask, box) for box in _grid(image, CELL["bcss"], small, spec.max_items_per_image)]
    return items
