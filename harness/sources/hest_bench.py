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

import csv
import json
from functools import cached_property
from pathlib import Path

import numpy as np

from harness.errors import HarnessError
from harness.registry import HestBenchDataset
from harness.sources.base import Availability, SpotTable, TileSource, digest
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
            patches = self._open[path]["img"]
            if patches.ndim != 4 or patches.shape[-1] != 3 or patches.shape[1] * patches.shape[2] > MAX_IMAGE_PIXELS:
                raise HarnessError(f"{path}: 'img' has shape {patches.shape}, not (spots, height, width, 3) patches "
                                   f"of at most {MAX_IMAGE_PIXELS:,} px; replace the file from HEST-Bench")
            return np.asarray(patches[row])
        except (OSError, KeyError) as error:
            raise HarnessError(f"{path}: unreadable patch {row} ({error}); replace the file from HEST-Bench") from None

    def __getstate__(self) -> dict:
        return {"items": self.items, "_open": {}}


class HestBenchSource(TileSource):
    spec: HestBenchDataset

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
        """Each sample once, sorted, with its files and the fold whose test file names it."""
        samples: dict[str, dict] = {}
        tests = sorted(self.root.glob("splits/test_*.csv"), key=lambda p: int(p.stem.split("_")[-1]))
        for fold, path in enumerate(tests):
            for row in _csv_rows(path, ("sample_id", "patches_path", "expr_path")):
                sample = row["sample_id"]
                if sample in samples:
                    raise HarnessError(f"{path}: sample '{sample}' is also in the test file of fold "
                                       f"{samples[sample]['fold']}: each sample is tested in one fold")
                samples[sample] = {"sample": sample, "fold": fold, "patches": self._inside(row["patches_path"], path),
                                   "expr": self._inside(row["expr_path"], path)}
        if not samples:
            raise HarnessError(f"{self.root / 'splits'}: no test_<i>.csv split files")
        return [samples[s] for s in sorted(samples)]

    def _inside(self, relative: str, table: Path) -> Path:
        path = (self.root / relative).resolve()
        if self.root.resolve() not in path.parents:
            raise HarnessError(f"{table}: '{relative}' points outside {self.root}: paths are relative to the task folder")
        if not path.is_file():
            raise HarnessError(f"{table}: '{relative}' not found under {self.root}")
        return path

    @cached_property
    def _barcodes(self) -> list[list[str]]:
        h5py = _h5py()

        barcodes = []
        for sample in self._samples:
            try:
                with h5py.File(sample["patches"], "r") as h5:
                    barcodes.append([_text(b) for b in np.asarray(h5["barcode"]).reshape(-1)])
            except (OSError, KeyError) as error:
                raise HarnessError(f"{sample['patches']}: not a HEST patch file with 'img' and 'barcode' ({error})") from None
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
        """Counts of the genes every sample measures, spot for spot with the patch files' barcodes."""
        tables = [read_h5ad_rows(s["expr"], codes) for s, codes in zip(self._samples, self._barcodes)]
        genes = sorted(set.intersection(*(set(names) for _, names in tables)))
        counts = np.concatenate([matrix[:, [names.index(g) for g in genes]] for matrix, names in tables])
        folds = np.concatenate([np.full(len(codes), s["fold"]) for s, codes in zip(self._samples, self._barcodes)])
        patients = [s["sample"] for s, codes in zip(self._samples, self._barcodes) for _ in codes]
        return SpotTable(counts.astype(np.float32), genes, patients, folds=folds, given_genes=self._gene_list())

    def _gene_list(self) -> list[str] | None:
        path = self.root / self.spec.gene_list
        if not path.is_file():
            return None
        try:
            genes = json.loads(path.read_text(encoding="utf-8"))["genes"]
        except (ValueError, KeyError, TypeError, RecursionError) as error:
            raise HarnessError(f"{path}: not a gene list ({{\"genes\": [...]}}): {error}") from None
        return [str(g) for g in genes]


def read_h5ad_rows(path: Path, barcodes: list[str]) -> tuple[np.ndarray, list[str]]:
    """(counts of these spots (rows in this order), gene names) from an .h5ad file."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            spots, genes = _index(h5["obs"]), _index(h5["var"])
            row_of = {code: i for i, code in enumerate(spots)}
            missing = [code for code in barcodes if code not in row_of]
            if missing:
                raise HarnessError(f"{path}: no expression for {len(missing)} spot barcodes of its patch file "
                                   f"(e.g. {missing[0]})")
            rows = np.array([row_of[code] for code in barcodes], dtype=np.int64)
            return _rows(h5["X"], rows, len(spots), len(genes)), genes
    except (OSError, KeyError) as error:
        raise HarnessError(f"{path}: not an AnnData .h5ad file with X, obs and var ({error})") from None


def _index(frame) -> list[str]:
    """The index of an AnnData dataframe group (its `_index` attribute names the dataset)."""
    column = frame.attrs.get("_index", "_index")
    return [_text(v) for v in np.asarray(frame[_text(column)])]


def _rows(x, rows: np.ndarray, n_obs: int, n_var: int) -> np.ndarray:
    """These rows of X: a dense dataset, or a csr_matrix / csc_matrix group (data, indices, indptr)."""
    import h5py

    if isinstance(x, h5py.Dataset):
        return np.asarray(x, dtype=np.float64)[rows]
    kind = _text(x.attrs.get("encoding-type", ""))
    data, indices, indptr = np.asarray(x["data"]), np.asarray(x["indices"]), np.asarray(x["indptr"])
    if kind == "csr_matrix":
        out = np.zeros((len(rows), n_var), dtype=np.float64)
        for i, row in enumerate(rows):
            start, stop = indptr[row], indptr[row + 1]
            out[i, indices[start:stop]] = data[start:stop]
        return out
    if kind == "csc_matrix":
        out = np.zeros((n_obs, n_var), dtype=np.float64)
        for column in range(n_var):
            start, stop = indptr[column], indptr[column + 1]
            out[indices[start:stop], column] = data[start:stop]
        return out[rows]
    raise HarnessError(f"X is a '{kind}' group: only dense, csr_matrix and csc_matrix are read")


def _csv_rows(path: Path, columns: tuple[str, ...]) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    missing = [c for c in columns if rows and c not in rows[0]]
    if missing or not rows:
        raise HarnessError(f"{path}: a HEST split file needs the columns {', '.join(columns)}"
                           + (f" (missing {missing[0]})" if missing else " and at least one row"))
    return rows


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _dense(matrix) -> np.ndarray:
    return matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)


def _h5py():
    """h5py, or one line saying how to install the extra that brings it."""
    try:
        import h5py
    except ImportError:
        from harness.install_hints import install_extra

        raise HarnessError(f"HEST-Bench data is HDF5: {install_extra('hest')} (h5py)") from None
    return h5py
