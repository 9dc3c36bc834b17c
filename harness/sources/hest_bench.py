"""HEST-Bench task folders (mahmoodlab's `MahmoodLab/hest-bench` dataset on the Hub), read as they
are on disk:

  <data-root>/<path>/splits/train_<i>.csv, test_<i>.csv   sample_id, patches_path, expr_path
  <data-root>/<path>/patches/<sample>.h5                   img (n, H, W, 3) uint8, barcode (n, 1), coords (n, 2)
  <data-root>/<path>/adata/<sample>.h5ad                   raw counts, one row per spot barcode
  <data-root>/<path>/var_50genes.json                      {"genes": [...]}: HEST's gene list

Every spot of every sample is one item of the split `all`; its fold is the test file that names
its sample (HEST's folds are patient-level). Reading needs h5py (`pip install
'pathology-harness[hest]'`); an .h5ad file is HDF5 in AnnData's on-disk format (X dense, or a
csr_matrix / csc_matrix group; obs and var dataframes naming their index in `_index`), read here
without anndata, whose pandas<3 pin would hold back the whole harness.
"""

from __future__ import annotations

from collections import Counter
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import numpy as np

from harness.bounded_read import read_json
from harness.errors import HarnessError
from harness.registry import HestBenchDataset
from harness.sources.base import (
    Availability, SpotTable, TileSource, check_table_cells, digest, names_inside, read_table_rows,
)
from harness.sources.image_files import MAX_IMAGE_PIXELS

GATED = "(gated: accept the terms at https://huggingface.co/datasets/MahmoodLab/hest-bench and set HF_TOKEN)"
DOWNLOAD = ("huggingface-cli download MahmoodLab/hest-bench --repo-type dataset --include '{task}/*' "
            "--local-dir {root}  " + GATED)
DOWNLOAD_ALL = ("huggingface-cli download MahmoodLab/hest-bench --repo-type dataset --local-dir {root}  (all "
                "of its tasks; add --include '<TASK>/*' for one)  " + GATED)


class H5Spots:
    """The patch images of several samples' .h5 files as one sequence (opened lazily per process)."""

    def __init__(self, items: list[tuple[Path, int]]):
        self.items = items
        self._open: dict[Path, object] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> np.ndarray:
        import h5py

        path, row = self.items[index]
        try:
            if path not in self._open:
                self._open[path] = h5py.File(path, "r")
            return np.asarray(self._open[path]["img"][row])  # checked by check_patches when the source listed it
        except (OSError, KeyError) as error:
            raise HarnessError(f"{path}: unreadable patch {row} ({error}); replace the file from HEST-Bench") from None

    def __getstate__(self) -> dict:
        return {"items": self.items, "_open": {}}


def check_patches(path: Path, patches, barcodes: list[str]) -> None:
    """A sample's patch file holds one uint8 RGB patch per barcode, and no barcode twice (its spots'
    expression is found by barcode): one line naming the file otherwise, before any patch is read."""
    if (patches.ndim != 4 or patches.shape[-1] != 3 or patches.dtype != np.uint8
            or patches.shape[1] * patches.shape[2] > MAX_IMAGE_PIXELS):
        raise HarnessError(f"{path}: 'img' holds {patches.dtype} of shape {patches.shape}; HEST's patches are uint8 "
                           f"(spots, height, width, 3), at most {MAX_IMAGE_PIXELS:,} px each: replace the file from "
                           "HEST-Bench")
    if len(barcodes) != patches.shape[0]:
        raise HarnessError(f"{path}: {patches.shape[0]} patches in 'img' but {len(barcodes)} barcodes; "
                           "replace the file from HEST-Bench")
    if len(set(barcodes)) != len(barcodes):
        twice = next(code for code, count in Counter(barcodes).items() if count > 1)
        raise HarnessError(f"{path}: barcode '{twice}' names more than one patch; replace the file from HEST-Bench")


class HestBenchSource(TileSource):
    spec: HestBenchDataset
    extra: ClassVar[str] = "hest"  # h5py reads its patches and expression files

    @property
    def root(self) -> Path:
        return (self.context.data_root / self.spec.path).expanduser()

    def availability(self) -> Availability:
        if (self.root / "splits" / "test_0.csv").is_file():
            return Availability(ok=True)
        if not self.root.parent.is_dir():  # none of HEST-Bench: one reason for all its tasks (one row in a run's summary)
            return Availability(ok=False, reason=(
                f"no HEST-Bench folder at {self.root.parent}: get it with "
                + DOWNLOAD_ALL.format(root=self.root.parent) + ", or pass --data-root"))
        task = Path(self.spec.path).name
        return Availability(ok=False, reason=(
            f"no HEST-Bench task at {self.root} (splits/test_0.csv): get it with "
            + DOWNLOAD.format(task=task, root=self.root.parent) + ", or pass --data-root"))

    def download(self) -> str:
        return self.availability().reason or f"{self.name}: present at {self.root}"

    @cached_property
    def _samples(self) -> list[dict]:
        """Each sample once, sorted, with its files and the fold whose test file names it (-1: a
        sample that only the train files name, trained on in every fold and never tested). HEST
        trains fold i on the samples of train_<i>.csv; this source trains it on every sample that
        test_<i>.csv does not name, so a train file that says otherwise is refused (HEST-Bench's
        own files agree; a folder of one test and one train file is one fold)."""
        splits = self.root / "splits"
        tests, trains = _split_files(splits, "test"), _split_files(splits, "train")
        samples: dict[str, dict] = {}
        members: dict[int, set[str]] = {}
        for fold, (number, path) in enumerate(tests):
            rows = _csv_rows(path)
            members[number] = {row["sample_id"].strip() for row in rows}
            for row in rows:
                sample = row["sample_id"].strip()
                if sample in samples:
                    raise HarnessError(f"{path}: sample '{sample}' is also in the test file of fold "
                                       f"{samples[sample]['fold']}: each sample is tested in one fold")
                samples[sample] = {"sample": sample, "fold": fold, "test": path,
                                   "patches": self._inside(row["patches_path"], path),
                                   "expr": self._inside(row["expr_path"], path)}
        tested = set(samples)
        named = {number: (path, _csv_rows(path)) for number, path in trains}
        for number, (path, rows) in named.items():  # samples no test file names: trained on, never tested
            for row in rows:
                sample = row["sample_id"].strip()
                if sample not in samples:
                    samples[sample] = {"sample": sample, "fold": -1, "test": None,
                                       "patches": self._inside(row["patches_path"], path),
                                       "expr": self._inside(row["expr_path"], path)}
        for number, (path, rows) in named.items():
            ids = {row["sample_id"].strip() for row in rows}
            if number not in members:
                problem = f"there is no test_{number}.csv to go with it"
            elif ids & members[number]:
                problem = f"it names '{sorted(ids & members[number])[0]}', which test_{number}.csv names too"
            elif ids != set(samples) - members[number]:
                odd = sorted(set(samples) - members[number] - ids)[0]
                problem = f"it leaves out '{odd}', which " + ("another fold tests" if odd in tested else
                                                             "another train file names and no test file does")
            else:
                continue
            raise HarnessError(f"{path}: {problem}; this harness trains fold {number} on every sample that "
                               f"test_{number}.csv does not name: fix the split files or get them again from HEST-Bench")
        if len(tests) == 1 and len(samples) == len(tested):
            raise HarnessError(f"{tests[0][1]}: the only test split file names every sample, so its fold has none to "
                               "train on: add samples to train on in train_0.csv, or more folds (test_1.csv, ...)")
        return [samples[s] for s in sorted(samples)]

    def _inside(self, relative: str, table: Path) -> Path:
        """The file a split file names, under the task folder: the name itself may not leave it (an
        absolute path, a '..' step), as a dataset table's may not (check_table_paths); a link the
        user placed there may (`huggingface-cli download --local-dir` made the large files links
        into the Hub cache before huggingface_hub 0.23, which resolving the path refused)."""
        if not names_inside(relative.strip()):
            raise HarnessError(f"{table}: '{relative[:100]}' points outside {self.root}: paths are relative to the "
                               "task folder")
        path = self.root / relative.strip().replace("\\", "/")
        if not path.is_file():
            raise HarnessError(f"{table}: '{relative[:100]}' not found under {self.root}")
        return path

    @cached_property
    def _barcodes(self) -> list[list[str]]:
        h5py = _h5py()

        barcodes = []
        for sample in self._samples:
            try:
                with h5py.File(sample["patches"], "r") as h5:
                    codes = [_text(b) for b in np.asarray(h5["barcode"]).reshape(-1)]
                    check_patches(sample["patches"], h5["img"], codes)
            except (OSError, KeyError) as error:
                raise HarnessError(f"{sample['patches']}: not a HEST patch file with 'img' and 'barcode' ({error})") from None
            barcodes.append(codes)
        tested = {s["test"] for s, codes in zip(self._samples, barcodes) if codes}
        empty = sorted({s["test"] for s in self._samples if s["test"] is not None} - tested)
        if empty:  # a fold without test spots has no score
            raise HarnessError(f"{empty[0]}: its samples' patch files hold no spots; replace them from HEST-Bench")
        return barcodes

    def fingerprint(self) -> str:
        files = [(s["sample"], s["fold"], s["patches"].stat().st_size, s["expr"].stat().st_size) for s in self._samples]
        return digest({"root": str(self.root), "files": files, "gene_list": self.spec.gene_list})

    def split_names(self) -> list[str]:
        return ["all"]

    def class_names(self) -> list[str]:
        return []

    def labels(self, split: str) -> None:
        return None

    def images(self, split: str) -> H5Spots:
        return H5Spots([(s["patches"], row) for s, codes in zip(self._samples, self._barcodes)
                        for row in range(len(codes))])

    def spots(self, split: str) -> SpotTable:
        """Counts of the genes every sample measures, spot for spot with the patch files' barcodes;
        each sample's rows are read into the table as they come (only these spots and genes)."""
        return self._table(None)

    def given_spots(self, split: str) -> SpotTable:
        """`spots` with only the genes of HEST's list (those every sample measures; a listed gene
        that one does not is left for the family to name): 50 columns, not tens of thousands."""
        return self._table(self._gene_list())

    def _table(self, only: list[str] | None) -> SpotTable:
        genes = sorted(set.intersection(*(set(expression_genes(s["expr"])) for s in self._samples)))
        if only is not None:
            listed = set(only)
            genes = [g for g in genes if g in listed]
        counts = np.empty((sum(len(codes) for codes in self._barcodes), len(genes)), dtype=np.float32)
        start = 0
        for sample, codes in zip(self._samples, self._barcodes):
            counts[start : start + len(codes)] = read_expression(sample["expr"], codes, genes)
            start += len(codes)
        folds = np.concatenate([np.full(len(codes), s["fold"]) for s, codes in zip(self._samples, self._barcodes)])
        patients = [s["sample"] for s, codes in zip(self._samples, self._barcodes) for _ in codes]
        return SpotTable(counts, genes, patients, folds=folds, given_genes=self._gene_list())

    def _gene_list(self) -> list[str] | None:
        path = self.root / self.spec.gene_list
        if not path.is_file():
            return None
        try:
            genes = read_json(path, MAX_GENE_LIST_BYTES, "gene list")["genes"]
        except (ValueError, KeyError, TypeError, OSError) as error:
            raise HarnessError(f"{path}: not a gene list ({{\"genes\": [...]}}): {error}") from None
        if not isinstance(genes, list) or not genes or not all(isinstance(g, str) and g for g in genes):
            raise HarnessError(f"{path}: 'genes' is not a list of gene names; get the file again from HEST-Bench")
        return genes


MAX_GENE_LIST_BYTES = 2**20  # HEST's var_50genes.json is under 1 kB

# what one read of an .h5ad's X may bring into memory at once: a dense X is read in blocks of rows, a
# sparse X's stored entries in runs of rows (csr) or genes (csc), each at most this many values
MAX_READ_VALUES = 16_000_000


def expression_genes(path: Path) -> list[str]:
    """The gene names (the var index) of an .h5ad file."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            return _index(h5["var"])
    except (OSError, KeyError) as error:
        raise HarnessError(f"{path}: not an AnnData .h5ad file with X, obs and var ({error})") from None


def read_expression(path: Path, barcodes: list[str], genes: list[str]) -> np.ndarray:
    """(len(barcodes), len(genes)) float32 counts of these spots and genes, in these orders, from an
    .h5ad file. Only those rows and genes are kept, and X is read a part at a time (at most
    MAX_READ_VALUES values at once), so a sample's memory is its spots x the genes asked for, not
    its whole matrix; X's structure and its values (counts: finite, >= 0) are checked."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            spots, names = _index(h5["obs"]), _index(h5["var"])
            rows = _positions(spots, barcodes)
            missing = [code for code, row in zip(barcodes, rows) if row < 0]
            if missing:
                raise HarnessError(f"{path}: no expression for {len(missing)} spot barcodes of its patch file "
                                   f"(e.g. {missing[0]})")
            columns = _positions(names, genes)
            if (columns < 0).any():
                raise HarnessError(f"{path}: no gene '{genes[int(np.flatnonzero(columns < 0)[0])]}' in its var index")
            needed, inverse = np.unique(rows, return_inverse=True)
            counts = _read_x(h5["X"], needed, columns, len(spots), len(names))[inverse.reshape(-1)]
    except (OSError, KeyError) as error:
        raise HarnessError(f"{path}: not an AnnData .h5ad file with X, obs and var ({error})") from None
    except (ValueError, TypeError) as error:  # a matrix whose structure or values do not hold together
        raise HarnessError(f"{path}: X is not a readable count matrix ({error}); replace the file from HEST-Bench") from None
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise HarnessError(f"{path}: X holds negative or non-finite values where counts (>= 0) were expected; "
                           "replace the file from HEST-Bench")
    return counts


def _index(frame) -> list[str]:
    """The index of an AnnData dataframe group (its `_index` attribute names the dataset)."""
    column = frame.attrs.get("_index", "_index")
    return [_text(v) for v in np.asarray(frame[_text(column)])]


def _positions(index: list[str], wanted: list[str]) -> np.ndarray:
    """The position of each wanted name in the index (its first, if repeated); -1 where absent."""
    first: dict[str, int] = {}
    for position, name in enumerate(index):
        first.setdefault(name, position)
    return np.array([first.get(name, -1) for name in wanted], dtype=np.int64)


def _read_x(x, rows: np.ndarray, columns: np.ndarray, n_obs: int, n_var: int) -> np.ndarray:
    """X[rows][:, columns] as float32 (the table's type; counts sum exactly up to 2^24), rows sorted
    and unique; X dense, or a csr_matrix / csc_matrix group (data, indices, indptr) as anndata writes
    them (entries stored twice for one cell summed, as scipy sums them)."""
    import h5py

    out = np.zeros((len(rows), len(columns)), dtype=np.float32)
    if isinstance(x, h5py.Dataset):
        if x.shape != (n_obs, n_var):
            raise ValueError(f"shape {x.shape}, where obs and var give {(n_obs, n_var)}")
        block = max(1, MAX_READ_VALUES // max(n_var, 1))
        for start in range(0, n_obs, block):
            inside = (rows >= start) & (rows < start + block)
            if inside.any():
                out[inside] = np.asarray(x[start : start + block])[rows[inside] - start][:, columns]
        return out
    kind = _text(x.attrs.get("encoding-type", ""))
    if kind not in ("csr_matrix", "csc_matrix"):
        raise ValueError(f"a '{kind}' group; only dense, csr_matrix and csc_matrix are read")
    shape = tuple(int(n) for n in np.asarray(x.attrs.get("shape", (n_obs, n_var))).reshape(-1))
    if shape != (n_obs, n_var):
        raise ValueError(f"shape {shape}, where obs and var give {(n_obs, n_var)}")
    by_row = kind == "csr_matrix"
    n_major, n_minor = (n_obs, n_var) if by_row else (n_var, n_obs)
    indptr = np.asarray(x["indptr"], dtype=np.int64)
    stored = x["data"].shape[0] if x["data"].ndim == 1 else -1
    if (indptr.shape != (n_major + 1,) or indptr[0] != 0 or (np.diff(indptr) < 0).any()
            or (np.diff(indptr) > n_minor).any() or x["indices"].shape != (stored,) or indptr[-1] != stored):
        raise ValueError(f"its {kind} indptr, indices and data do not agree with each other and its shape")
    # where each wanted row / gene goes in `out` (-1: not wanted)
    row_to = np.full(n_obs, -1, dtype=np.int64)
    row_to[rows] = np.arange(len(rows))
    column_to = np.full(n_var, -1, dtype=np.int64)
    column_to[columns] = np.arange(len(columns))
    wanted = rows if by_row else np.unique(columns)
    for first, last in _runs(indptr, wanted, MAX_READ_VALUES):
        lo, hi = int(indptr[first]), int(indptr[last])
        minor = np.asarray(x["indices"][lo:hi], dtype=np.int64)
        if ((minor < 0) | (minor >= n_minor)).any():
            raise ValueError(f"its {kind} indices fall outside its shape")
        major = np.repeat(np.arange(first, last), np.diff(indptr[first : last + 1]))
        row, column = (major, minor) if by_row else (minor, major)
        at_row, at_column = row_to[row], column_to[column]
        keep = (at_row >= 0) & (at_column >= 0)
        np.add.at(out, (at_row[keep], at_column[keep]), np.asarray(x["data"][lo:hi], dtype=np.float32)[keep])
    return out


def _runs(indptr: np.ndarray, wanted: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Ranges [first, last) of major lines (rows of a CSR, columns of a CSC) that cover every wanted
    line (sorted) and hold at most `budget` stored entries each (or one line)."""
    runs: list[tuple[int, int]] = []
    first = last = None
    for line in (int(i) for i in wanted):
        if first is not None and indptr[line + 1] - indptr[first] <= budget:
            last = line + 1
            continue
        if first is not None:
            runs.append((first, last))
        first, last = line, line + 1
    if first is not None:
        runs.append((first, last))
    return runs


def _split_files(folder: Path, kind: str) -> list[tuple[int, Path]]:
    """The `kind` (test or train) split files of a HEST task, <kind>_<i>.csv, sorted by i; any other
    file named <kind>_*.csv (a copy, 'test_0 (1).csv') is refused rather than guessed at."""
    files = []
    for path in folder.glob(f"{kind}_*.csv"):
        number = path.stem[len(kind) + 1 :]
        if not (number.isascii() and number.isdigit()):
            raise HarnessError(f"{path}: not a HEST split file name ({kind}_<i>.csv with a number i); "
                               "rename or remove it")
        twin = next((other for n, other in files if n == int(number)), None)
        if twin is not None:  # test_0.csv and test_00.csv: which is fold 0?
            raise HarnessError(f"{path}: {twin.name} has the same fold number; keep one of them")
        files.append((int(number), path))
    return sorted(files)


def _csv_rows(path: Path, columns: tuple[str, ...] = ("sample_id", "patches_path", "expr_path")) -> list[dict]:
    rows, starts = read_table_rows(path, "HEST split file")
    missing = [c for c in columns if rows and c not in rows[0]]
    if missing or not rows:
        found = f" (missing {missing[0]}; it has {', '.join(map(str, rows[0]))})" if missing else " and at least one row"
        raise HarnessError(f"{path}: a HEST split file needs the columns {', '.join(columns)}" + found)
    check_table_cells(rows, columns, path, starts)
    return rows


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _h5py():
    """h5py, or one line saying how to install the extra that brings it."""
    try:
        import h5py
    except ImportError:
        from harness.install_hints import missing_extra

        raise HarnessError(missing_extra("hest") or "h5py cannot be imported") from None
    return h5py
