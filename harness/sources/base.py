"""The interface every dataset source offers the runner: a `Source` of one of two kinds.

  tiles    a TileSource: splits of images (with labels, text records, latents, masks), embedded per split
  slides   a SlideSource (slide_source.py): a table of whole slides, tiled and embedded per slide

The runner asks `source.kind`; it never asks which class a source is. Source kinds are
registered by the name a dataset's `source:` key gives (harness/sources/__init__.py).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, ClassVar, Literal, Sequence

import numpy as np

from harness.bounded_read import NotRegularFile, open_regular_file
from harness.errors import HarnessError


def default_cache_dir() -> Path:
    """Where generated data and embeddings go unless --cache-dir says: $HARNESS_CACHE, else ~/.cache/harness
    (an empty $HARNESS_CACHE is unset, not the working folder)."""
    return Path(os.environ.get("HARNESS_CACHE") or Path.home() / ".cache" / "harness").expanduser()


@dataclass(frozen=True)
class DataContext:
    cache_dir: Path  # generated data and embeddings
    data_root: Path  # user-provided datasets (image folders, slides)
    # where embeddings go when not under cache_dir (a queue backend: one folder per request,
    # removed once the request is scored)
    embeddings_dir: Path | None = None


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""  # why not, and the command or steps that get the data


class Source(ABC):
    """What every source offers, whatever its kind."""

    kind: ClassVar[Literal["tiles", "slides"]]
    extra: ClassVar[str | None] = None  # the install extra its reader needs (harness/install_hints.py EXTRAS)

    def __init__(self, name: str, spec: Any, context: DataContext):
        self.name = name
        self.spec = spec
        self.context = context

    @abstractmethod
    def availability(self) -> Availability: ...

    def prepare(self) -> None:
        """Make the data usable (generate, index). Called once before reading."""

    @abstractmethod
    def fingerprint(self) -> str:
        """Changes whenever the items or their order change (part of the cache key)."""

    @abstractmethod
    def class_names(self) -> list[str]: ...

    def revision(self) -> str | None:
        """The commit the data was read at, for sources that have one (a Hub dataset)."""
        return None

    def download(self) -> str:
        """Fetch the data; return what was done. Sources that cannot fetch explain how."""
        return f"{self.name}: nothing to download"


class TileSource(Source):
    """Images in named splits: each split is embedded once per model and cached."""

    kind = "tiles"

    @abstractmethod
    def split_names(self) -> list[str]: ...

    @abstractmethod
    def labels(self, split: str) -> np.ndarray | None: ...

    @abstractmethod
    def images(self, split: str) -> Sequence[Any]:
        """Map-style, picklable sequence of RGB tiles (HWC uint8 arrays or PIL images)."""

    def split_fingerprint(self, split: str) -> str:
        """What one split's embeddings depend on (part of their cache key): its images and their
        order. By default the dataset's fingerprint; a source that can tell its splits apart says
        less, so that a label corrected in a table, or images added to the test split, do not embed
        the other splits again."""
        return self.fingerprint()

    def copies_across_splits(self) -> tuple[dict[str, int], tuple | None] | None:
        """A published dataset's items whose image is byte for byte in an earlier split, counted
        rather than refused ({split: how many}, the first pair); None where the source does not count
        them (sources of one's own files refuse copies in prepare(): split_copies)."""
        return None

    def records(self, split: str) -> list[dict] | None:
        """Text annotations of the split's images (VQA pairs or reports), if the dataset has them."""
        return None

    def latents(self, split: str) -> np.ndarray | None:
        """Ground-truth latents (synthetic data only)."""
        return None

    def masks(self, split: str) -> Sequence[np.ndarray] | None:
        """Segmentation: one (H, W) class-index mask per image, the image's size (if the dataset has them)."""
        return None

    def spots(self, split: str) -> "SpotTable | None":
        """Spatial transcriptomics: each image is a spot, with its gene counts (if the dataset has them)."""
        return None

    def given_spots(self, split: str) -> "SpotTable | None":
        """`spots`, where only the genes of the dataset's own list (`SpotTable.given_genes`) will be
        read: a source may leave the others out (HEST-Bench's tables hold tens of thousands of genes,
        its list 50); by default, every gene."""
        return self.spots(split)

    def origins(self, split: str) -> "TileOrigins | None":
        """Where each tile comes from: its slide and medical centre (if the dataset records them)."""
        return None


@dataclass
class SpotTable:
    """The expression side of a split of spots, item for item with its images."""

    counts: np.ndarray  # (n, n_genes) raw counts
    genes: list[str]
    patients: list[str]  # the patient (or sample) of each spot: folds never split one
    folds: np.ndarray | None = None  # the dataset's own fold of each spot (HEST's split files)
    given_genes: list[str] | None = None  # a gene list the dataset ships


MAX_ORIGIN_LENGTH = 200


@dataclass
class TileOrigins:
    """The slide and medical centre of every tile of a split, item for item with its images."""

    slides: list[str]
    centres: list[str]
    subsets: list[str] | None = None  # the dataset's own in-/out-of-domain mark per tile (PathoROB's "ID"/"OOD")
    patches: list[str] | None = None  # the tile's id within its slide (PathoROB's patch_id)

    def check(self, n_items: int, where: str) -> "TileOrigins":
        optional = [len(v) for v in (self.subsets, self.patches) if v is not None]
        lengths = {len(self.slides), len(self.centres), *optional}
        if lengths != {n_items}:
            raise HarnessError(f"{where}: {n_items} tiles but slide/centre/subset/patch columns of lengths "
                               f"{sorted(lengths)}; every tile needs one of each")
        for kind, values in (("slide", self.slides), ("centre", self.centres), ("subset", self.subsets or ()),
                             ("patch", self.patches or ())):
            long = next((v for v in values if len(v) > MAX_ORIGIN_LENGTH or not v.isprintable()), None)
            if long is not None:  # names reach result files and the board: bounded, printable text
                raise HarnessError(f"{where}: a {kind} name is not printable text of at most {MAX_ORIGIN_LENGTH} "
                                   f"characters ({long[:40]!r}...); fix the dataset's {kind} column")
        return self


def digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_state(path: Path) -> tuple[int, int] | None:
    """(size, modification time in ns) of a dataset file, as fingerprints hold them: a file replaced
    under its name changes them. None for a file that cannot be read (reading it names it)."""
    try:
        state = path.stat()
    except OSError:
        return None
    return state.st_size, state.st_mtime_ns


class NpyImages:
    """Images in a (N, H, W, 3) .npy file, memory-mapped lazily in each process."""

    def __init__(self, path: Path):
        self.path = path
        self._array: np.ndarray | None = None
        self._length = int(np.load(path, mmap_mode="r").shape[0])

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.path, mmap_mode="r")
        return np.asarray(self._array[index])

    def __getstate__(self) -> dict:
        return {"path": self.path, "_array": None, "_length": self._length}


def check_text_records(records: list[dict], fields: tuple[str, ...], where: str) -> list[dict]:
    """Every record has a non-empty string in each text field, or one line naming the record."""
    for i, record in enumerate(records):
        for name in fields:
            value = record.get(name)
            if not isinstance(value, str) or not value.strip():
                raise HarnessError(
                    f"{where}: record {i} has an empty or non-text {name} ({value!r}); fix or drop that row"
                )
    return records


def records_from_columns(questions, answers, texts, where: str) -> list[dict] | None:
    """Records of a table with one image per row: question/answer pairs (yes/no answers are
    closed questions) or texts (reports), checked for empty values."""
    if questions is not None and answers is not None:
        records = [{"image": i, "kind": "closed" if str(a).strip().lower() in ("yes", "no") else "open",
                    "question": q, "answer": a} for i, (q, a) in enumerate(zip(questions, answers))]
        return check_text_records(records, ("question", "answer"), where)
    if texts is not None:
        return check_text_records([{"image": i, "report": t} for i, t in enumerate(texts)], ("report",), where)
    return None


def encode_labels(values, classes: list[str], where: str) -> np.ndarray:
    """Labels as class indices: ints stay, bools become 0/1, strings map through `classes`."""
    array = np.asarray(values)
    if array.dtype == bool:
        return array.astype(np.int64)
    if np.issubdtype(array.dtype, np.integer):
        outside = np.flatnonzero((array < 0) | (array >= len(classes)))
        if len(outside):
            raise HarnessError(f"{where}: row {outside[0]} has label {array[outside[0]]}, outside the "
                               f"{len(classes)} declared classes (0 to {len(classes) - 1})")
        return array.astype(np.int64)
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({str(v) for v in array} - set(index))
    if unknown:
        raise HarnessError(f"{where}: labels {unknown[:3]} are not among the declared classes {classes}")
    return np.array([index[str(v)] for v in array], dtype=np.int64)


def read_table_rows(path: Path, what: str) -> tuple[list[dict[str, str]], list[int]]:
    """The rows of a dataset's CSV `path` (a table of images, slides or HEST splits; `what` names it
    in errors) and the line each row starts on (a quoted cell may span lines). UTF-8, with or
    without the byte-order mark that Excel's "CSV UTF-8" writes (read as part of the first column's
    name, it made that column "missing"); text that is not UTF-8, a cell over csv's 128 KiB limit
    or a name that holds no regular file (a FIFO) is one line naming the file (and the line), not
    Python's words or a reader blocked for ever."""
    rows: list[dict[str, str]] = []
    starts: list[int] = []
    try:
        with io.TextIOWrapper(open_regular_file(path), encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            end = 1  # the header's line
            try:
                for row in reader:
                    rows.append(row)
                    starts.append(end + 1)
                    end = reader.line_num
            except csv.Error as error:  # raised before the reader counts the line it was reading
                raise HarnessError(f"{path}: line {reader.line_num + 1} is not readable CSV ({error}); "
                                   f"fix the {what}") from None
            except UnicodeDecodeError:  # text is decoded in blocks: the byte is somewhere after the lines read
                where = f" after line {reader.line_num}" if reader.line_num else ""
                raise HarnessError(f"{path}: not UTF-8 text (an undecodable byte{where}); "
                                   f"save the {what} as UTF-8 CSV") from None
    except NotRegularFile:  # a FIFO would block the reader for ever
        raise HarnessError(f"{path}: the {what} is not a regular file (a folder, a FIFO or a device)") from None
    except OSError as error:
        raise HarnessError(f"{path}: cannot read the {what} ({error.strerror or error})") from None
    return rows, starts


def check_table_cells(rows: Sequence[dict], columns: Sequence[str], table: Path,
                      lines: Sequence[int] | None = None) -> None:
    """Every row of a dataset's table has a value in each of `columns` (the image or slide, split,
    patient, label): a short row or an empty cell is one line naming the table and the row's line
    (`lines`: the line each row starts on; else the header's line plus its place). Left alone, a
    short row failed later in Python's words, an empty label became a class named '', and an empty
    split or patient grouped its rows under ''."""
    for line, row in zip(lines or range(2, len(rows) + 2), rows):
        for column in columns:
            if row.get(column) is None:
                raise HarnessError(f"{table}: line {line} has fewer fields than the header (no '{column}'); "
                                   "complete the row or remove it")
            if not row[column].strip():
                raise HarnessError(f"{table}: line {line} has an empty '{column}'; fill it in or remove the row")


def names_inside(text: str) -> bool:
    """Whether a file name a dataset's metadata gives stays under its folder by name: relative,
    without a '..' step, a drive or a NUL (a link placed under the folder may lead elsewhere)."""
    path = PurePosixPath(text.replace("\\", "/"))
    return bool(text) and "\0" not in text and not path.is_absolute() and ".." not in path.parts \
        and not PureWindowsPath(text).drive


def path_key(text: str) -> str:
    """One spelling of a table's file name (`./a.tiff`, `a.tiff `, `a\\b` and `a/b` alike), to tell the
    same file named twice."""
    return os.path.normpath(text.strip().replace("\\", "/"))


def check_table_paths(values: Sequence[str | None], column: str, table: Path,
                      lines: Sequence[int] | None = None) -> None:
    """The files a dataset's table names (an image, a slide) lie under the table's own folder: each
    value relative to it, without a '..' step. A table comes from outside (a dataset's metadata), so
    it may not choose what else on the machine the harness opens; files kept elsewhere are reached
    by a link placed under the folder. The first bad value is one line naming its line: `lines`, the
    line each value's row starts on, or else the header's line plus its place."""
    for line, value in zip(lines or range(2, len(values) + 2), values):
        text = "" if value is None else str(value)
        if not names_inside(text):
            raise HarnessError(f"{table}: line {line}, column '{column}': {text[:100]!r} is not a path inside the "
                               "table's folder (relative, without '..'); fix the table, or put the files or a link "
                               "to their folder under it")
