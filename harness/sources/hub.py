"""A Hugging Face Hub dataset of parquet shards, pinned to a revision.

Never downloaded implicitly: `harness download TASK` calls snapshot_download; a run finds the
files through the local Hub cache (local_files_only, no network) and reads them with
`datasets.load_dataset("parquet", data_files=...)`.
"""

from __future__ import annotations

import fnmatch
import warnings
from pathlib import Path

import numpy as np
from PIL.Image import DecompressionBombError, DecompressionBombWarning, Image

from harness.errors import HarnessError
from harness.registry import HubDataset
from harness.sources.base import (
    Availability, TileOrigins, TileSource, digest, encode_labels, records_from_columns,
)
from harness.sources.image_files import bomb_size, checked_image, rgb_image, too_large
from harness.sources.split_copies import copies_in_earlier_splits, staged_keys


class HubImages:
    """A split's images, decoded by `datasets` when read; `where` names the split in errors."""

    def __init__(self, table, column: str, where: str):
        self.table = table
        self.column = column
        self.where = where

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int):
        where = f"{self.where} row {int(index)}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DecompressionBombWarning)  # refused by checked_image, in one line
                image = self.table[int(index)][self.column]
        except DecompressionBombError as error:
            raise HarnessError(f"{where}: {too_large(bomb_size(error))}") from None
        except (OSError, SyntaxError) as error:
            raise HarnessError(f"{where}: unreadable image ({error}): a corrupt row of the dataset") from None
        if isinstance(image, Image):
            return rgb_image(checked_image(image, where))
        if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
            return image  # an HWC uint8 array (an Array3D column)
        what = "empty" if image is None else f"a {type(image).__name__}, not an image"
        raise HarnessError(f"{where}: the '{self.column}' cell is {what}; image_column must name an Image column "
                           "(datasets' Image feature) with an image in every row")


class HubTileSource(TileSource):
    spec: HubDataset

    def __init__(self, name, spec, context):
        super().__init__(name, spec, context)
        self._tables: dict = {}
        self._disjoint = False  # data_files checked for a file two splits share (once per source)
        self._copies: tuple[dict[str, int], tuple | None] | None = None  # copies_across_splits, once per source

    # --- locating files -------------------------------------------------------------
    def _snapshot(self) -> Path | None:
        from huggingface_hub import snapshot_download

        try:
            folder = snapshot_download(
                self.spec.hub_id, repo_type="dataset", revision=self.spec.revision,
                local_files_only=True, allow_patterns=list(self.spec.data_files.values()),
            )
        except Exception:  # noqa: BLE001 - not in the local cache
            return None
        return Path(folder)

    def _files(self, snapshot: Path, split: str) -> list[Path]:
        pattern = self.spec.data_files[split]
        return sorted(
            path for path in snapshot.rglob("*")
            if path.is_file() and fnmatch.fnmatch(path.relative_to(snapshot).as_posix(), pattern)
        )

    def availability(self) -> Availability:
        snapshot = self._snapshot()
        missing = [s for s in self.spec.data_files if snapshot is None or not self._files(snapshot, s)]
        if not missing:
            return Availability(ok=True)
        size = f", ~{self.spec.download_gb:g} GB" if self.spec.download_gb else ""
        held = sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file())[:4] \
            if snapshot else []
        if held:  # a copy is here, but a split's pattern matches none of it: not downloaded yet, or a typo
            return Availability(
                ok=False,
                reason=f"no file of the local copy of {self.spec.hub_id}@{self.spec.revision} matches data_files "
                       f"{', '.join(f'{s}={self.spec.data_files[s]!r}' for s in missing)} (it holds "
                       f"{', '.join(held[:3])}{', ...' if len(held) > 3 else ''}); get it with `harness download "
                       f"{self.name}`, which says so if no file of the repository matches",
            )
        return Availability(
            ok=False,
            reason=f"{self.spec.hub_id}@{self.spec.revision} is not in the local Hub cache "
                   f"(splits {', '.join(missing)}{size}); get it with `harness download {self.name}`",
        )

    def fingerprint(self) -> str:
        snapshot = self._snapshot()
        files = {s: [(p.name, p.stat().st_size) for p in self._files(snapshot, s)] for s in self.spec.data_files} \
            if snapshot else {}
        selection = {key: getattr(self.spec, key) for key in ("split_column", "order_column", "items_per_split",
                                                              "plismbench_subset") if getattr(self.spec, key)}
        return digest({"hub_id": self.spec.hub_id, "revision": self.spec.revision,
                       "commit": snapshot.name if snapshot else None, "files": files,
                       **({"selection": selection} if selection else {})})

    def _check_disjoint(self, snapshot: Path) -> None:
        """No file is matched by two splits' patterns: `train: data/*.parquet` beside `test:
        data/test-*.parquet` trained on the test rows (fnmatch's * spans folders too)."""
        if self._disjoint:
            return
        owner: dict[Path, str] = {}
        for split in self.spec.data_files:
            for path in self._files(snapshot, split):
                if path in owner:
                    raise HarnessError(
                        f"{self.name}: data_files of splits '{owner[path]}' ({self.spec.data_files[owner[path]]!r}) "
                        f"and '{split}' ({self.spec.data_files[split]!r}) both match "
                        f"{path.relative_to(snapshot).as_posix()}: a file in two splits leaks between them; narrow "
                        "the patterns")
                owner[path] = split
        self._disjoint = True

    # --- reading --------------------------------------------------------------------
    def _file_table(self, key: str):
        """The rows of one data_files entry, their columns checked."""
        from datasets import load_dataset

        snapshot = self._snapshot()
        if snapshot is None:
            raise HarnessError(self.availability().reason)
        self._check_disjoint(snapshot)
        files = [str(p) for p in self._files(snapshot, key)]
        table = load_dataset("parquet", data_files={"rows": files}, split="rows")  # any key, even `all`
        spec = self.spec
        columns = (spec.image_column, spec.label_column, spec.question_column, spec.answer_column,
                   spec.text_column, spec.split_column, spec.order_column, spec.slide_column,
                   spec.centre_column, spec.subset_column, spec.patch_column)
        for column in (c for c in columns if c):
            if column not in table.column_names:
                raise HarnessError(
                    f"{spec.hub_id}: '{key}' has no column '{column}' (columns: {', '.join(table.column_names)}); "
                    "fix the dataset's column keys in tasks.yaml"
                )
        return table

    def _table(self, split: str):
        if split not in self._tables:
            if self.spec.split_column:
                self._tables[split] = self._whole().select(self._split_rows()[split])
            else:
                self._tables[split] = self._file_table(split)
        return self._tables[split]

    def _whole(self):
        if "__whole__" not in self._tables:
            self._tables["__whole__"] = self._file_table(next(iter(self.spec.data_files)))
        return self._tables["__whole__"]

    def _split_rows(self) -> dict[str, list[int]]:
        """split_column value -> its row indices: in order_column order, capped at items_per_split;
        or, with plismbench_subset, plismbench's selection (`plismbench_rows`)."""
        if "__rows__" not in self._tables:
            whole = self._whole()
            keys = np.asarray(whole[self.spec.split_column]).astype(str)
            order = np.asarray(whole[self.spec.order_column]) if self.spec.order_column else np.arange(len(keys))
            rows = {}
            for value in sorted(set(keys)):
                index = np.flatnonzero(keys == value)
                if self.spec.plismbench_subset:
                    rows[value] = index[plismbench_rows(order[index], self.spec.plismbench_subset,
                                                        f"{self.spec.hub_id} split '{value}'")].tolist()
                    continue
                index = index[np.argsort(order[index], kind="stable")][: self.spec.items_per_split]
                rows[value] = index.tolist()
            self._tables["__rows__"] = rows
        return self._tables["__rows__"]

    def split_names(self) -> list[str]:
        if self.spec.split_column:
            return list(self._split_rows())
        return list(self.spec.data_files)

    def class_names(self) -> list[str]:
        return list(self.spec.classes)

    def labels(self, split: str) -> np.ndarray | None:
        if self.spec.label_column is None:
            return None
        table = self._table(split)
        values = table[self.spec.label_column]
        where = f"{self.spec.hub_id} split '{split}'"
        names = getattr(table.features.get(self.spec.label_column), "names", None)
        # a ClassLabel column's integers mean its own names, whatever order `classes` has; -1 is how
        # `datasets` marks a row without a label (names[-1] would read it as the last class)
        labelled = (lambda v: v is not None and 0 <= v < len(names)) if names else (lambda v: v is not None)
        unlabelled = next((row for row, v in enumerate(values) if not labelled(v)), None)
        if unlabelled is not None:
            raise HarnessError(f"{where}: row {unlabelled} has no label ({self.spec.label_column} = "
                               f"{values[unlabelled]!r}); a task scores labelled rows only: drop the unlabelled "
                               "rows, or point data_files at a labelled split")
        if names:
            values = [names[v] for v in values]
        return encode_labels(values, self.spec.classes, where)

    def copies_across_splits(self) -> tuple[dict[str, int], tuple | None] | None:
        """Of each split after the first (data_files' order: train, val, test), how many images are byte
        for byte an image of an earlier split, and the first such pair (split, row, earlier split, row):
        counted, not refused (split_copies). Found as duplicate finders do, on the encoded images'
        bytes: their lengths (read from the table's offsets), then the first 4 KiB of those whose
        length occurs in two splits, then SHA-256 of those whose start does too. None where there is
        nothing to compare: splits cut from one table by split_column (PLISM's slides, PathoROB's
        centres are not train and test), or images that are not stored as encoded bytes."""
        if self.spec.split_column or len(self.spec.data_files) < 2:
            return None
        if self._copies is None:
            blobs = {split: self._encoded_images(split) for split in self.spec.data_files}
            if any(b is None for b in blobs.values()):
                return None
            self._copies = copies_in_earlier_splits(staged_keys(blobs))
        return self._copies

    def _encoded_images(self, split: str):
        """The split's images as stored (an Image column's `bytes`, one arrow array), or None."""
        import pyarrow as pa
        import pyarrow.compute as pc

        column = self._table(split).data.column(self.spec.image_column)
        if not (pa.types.is_struct(column.type) and column.type.get_field_index("bytes") >= 0):
            return None
        blobs = pc.struct_field(column, "bytes")
        return blobs if pa.types.is_binary(blobs.type) or pa.types.is_large_binary(blobs.type) else None

    def revision(self) -> str | None:
        snapshot = self._snapshot()
        return snapshot.name if snapshot else None

    def records(self, split: str) -> list[dict] | None:
        """One record per row: its image is the row's image."""
        spec = self.spec
        if not (spec.question_column and spec.answer_column) and not spec.text_column:
            return None
        table = self._table(split)
        column = lambda name: table[name] if name else None  # noqa: E731
        return records_from_columns(column(spec.question_column), column(spec.answer_column),
                                    column(spec.text_column), f"{spec.hub_id} split '{split}'")

    def origins(self, split: str) -> TileOrigins | None:
        spec = self.spec
        if not (spec.slide_column and spec.centre_column):
            return None
        table = self._table(split)
        text = lambda name: [str(v) for v in table[name]]  # noqa: E731
        return TileOrigins(slides=text(spec.slide_column), centres=text(spec.centre_column),
                           subsets=text(spec.subset_column) if spec.subset_column else None,
                           patches=text(spec.patch_column) if spec.patch_column else None)

    def images(self, split: str) -> HubImages:
        return HubImages(self._table(split), self.spec.image_column, f"{self.spec.hub_id} split '{split}'")

    def download(self) -> str:
        from huggingface_hub import snapshot_download

        from harness.hub_access import hub_call, hub_reachable

        if not hub_reachable():
            raise HarnessError(f"{self.name}: the Hugging Face Hub is unreachable; connect and retry")
        folder = hub_call(f"downloading dataset '{self.name}'", self.spec.hub_id, lambda: snapshot_download(
            self.spec.hub_id, repo_type="dataset", revision=self.spec.revision,
            allow_patterns=list(self.spec.data_files.values()),
        ))
        unmatched = [split for split in self.spec.data_files if not self._files(Path(folder), split)]
        if unmatched:  # snapshot_download fetched what the patterns match: here, nothing for these splits
            raise HarnessError(
                f"{self.name}: no file of {self.spec.hub_id}@{self.spec.revision} matches data_files "
                f"{', '.join(f'{s}={self.spec.data_files[s]!r}' for s in unmatched)}; fix the pattern against the "
                f"repository's files (https://huggingface.co/datasets/{self.spec.hub_id}/tree/{self.spec.revision})")
        return f"{self.name}: {self.spec.hub_id}@{self.spec.revision} downloaded to {folder}"


PLISM_TILES_PER_SLIDE = 16278


def plismbench_rows(tile_ids: np.ndarray, subset: int, where: str) -> np.ndarray:
    """plismbench's selection of one slide's rows: sort them by the tile coordinates in their ids
    (`<slide>_<a>_<x>_<y>`: by x, then y), then take the rows its `tiles_subset_<N>.npy` lists
    (harness/data/plismbench; N = 16,278 keeps them all). Positions into `tile_ids`."""
    if len(tile_ids) != PLISM_TILES_PER_SLIDE:
        raise HarnessError(f"{where}: {len(tile_ids)} tiles, not PLISM's {PLISM_TILES_PER_SLIDE}: plismbench's "
                           "subsets index a whole slide")
    try:
        parts = np.array([[int(p) for p in str(tile_id).split("_")[1:4]] for tile_id in tile_ids])
    except ValueError:
        raise HarnessError(f"{where}: a tile id is not <slide>_<int>_<int>_<int> (e.g. {tile_ids[0]!r})") from None
    by_coordinates = np.lexsort((parts[:, 2], parts[:, 1]))  # x first, then y
    if subset == PLISM_TILES_PER_SLIDE:
        return by_coordinates
    from importlib.resources import files

    chosen = np.load(str(files("harness").joinpath(f"data/plismbench/tiles_subset_{subset}.npy")))
    return by_coordinates[chosen]
