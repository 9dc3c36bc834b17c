"""A CSV table of images: one row per image with its split and a label, a question and answer,
or a report. Image paths are relative to the CSV's folder, and stay inside it."""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path

import numpy as np

from harness.errors import HarnessError
from harness.registry import CsvDataset
from harness.sources.base import (
    Availability, TileSource, check_table_cells, check_table_paths, digest, encode_labels, file_state, path_key,
    read_table_rows, records_from_columns,
)
from harness.sources.image_folder import FolderImages
from harness.sources.split_copies import refuse_copies_across_splits


class CsvTableSource(TileSource):
    spec: CsvDataset

    def __init__(self, name, spec, context):
        super().__init__(name, spec, context)
        self._checked = False  # no image in two splits (prepare)
        self._prints: dict[str, str] = {}  # split -> its fingerprint, its images' states read once per run

    @property
    def table_path(self) -> Path:
        return (self.context.data_root / self.spec.path).expanduser()

    def availability(self) -> Availability:
        if self.table_path.is_file():
            return Availability(ok=True)
        how = f"{self.spec.instructions.strip()} " if self.spec.instructions else ""
        # "<what is missing>: <steps>", as the other sources say it: the run's summary splits there
        return Availability(ok=False, reason=f"no table at {self.table_path}: {how}Put it there or pass --data-root")

    @cached_property
    def rows(self) -> list[dict[str, str]]:
        rows, starts = read_table_rows(self.table_path, "table")
        spec = self.spec
        wanted = [spec.image_column, spec.split_column, spec.label_column, spec.question_column,
                  spec.answer_column, spec.text_column]
        missing = [c for c in wanted if c and rows and c not in rows[0]]
        if not rows or missing:
            columns = ", ".join(rows[0]) if rows else "none"
            raise HarnessError(f"{self.table_path}: missing column(s) {missing or wanted[:2]} (columns: {columns}); "
                               "fix the *_column keys of this dataset in your YAML")
        check_table_cells(rows, [c for c in (spec.image_column, spec.split_column, spec.label_column) if c],
                          self.table_path, starts)  # question, answer, text: records_from_columns names them
        check_table_paths([row[spec.image_column] for row in rows], spec.image_column, self.table_path, starts)
        self._one_split_per_image(rows, starts)
        return rows

    def _one_split_per_image(self, rows: list[dict[str, str]], starts: list[int]) -> None:
        """An image in two splits (a test image also trained on) is refused naming both lines: its
        score would be inflated without a word. Within one split it may repeat (VQA: a question each)."""
        spec, first = self.spec, {}
        for line, row in zip(starts, rows):
            seen = first.setdefault(path_key(row[spec.image_column]), (line, row[spec.split_column]))
            if seen[1] != row[spec.split_column]:
                raise HarnessError(f"{self.table_path}: line {line} puts image '{row[spec.image_column]}' in split "
                                   f"'{row[spec.split_column]}', line {seen[0]} in '{seen[1]}': an image in two splits "
                                   "leaks between them; keep it in one")

    def prepare(self) -> None:
        """The same image under two names in two splits is refused, as one name in two splits is
        (split_copies); once per run."""
        if not self._checked:
            folder = self.table_path.parent
            refuse_copies_across_splits({s: [folder / r[self.spec.image_column] for r in self._split_rows(s)]
                                         for s in self.split_names()}, folder, str(self.table_path))
            self._checked = True

    def _split_rows(self, split: str) -> list[dict[str, str]]:
        return [row for row in self.rows if row[self.spec.split_column] == split]

    def split_names(self) -> list[str]:
        return sorted({row[self.spec.split_column] for row in self.rows})

    def class_names(self) -> list[str]:
        if self.spec.classes or not self.spec.label_column:
            return list(self.spec.classes)
        return sorted({row[self.spec.label_column] for row in self.rows})

    def fingerprint(self) -> str:
        """The table's bytes and every split's images (split_fingerprint): a label corrected in the
        table scores the tasks again without embedding anything again."""
        return digest({"table": hashlib.sha256(self.table_path.read_bytes()).hexdigest(),
                       "splits": {s: self.split_fingerprint(s) for s in self.split_names()}})

    def split_fingerprint(self, split: str) -> str:
        """The table's folder, and the split's images in order with their sizes and modification
        times: images re-exported under the same names (another magnification, another stain
        normalisation, in place or in a copy of the folder) are embedded again, not answered from the
        cache. An image that is not there has none; reading it names it."""
        if split not in self._prints:
            folder, column = self.table_path.parent, self.spec.image_column
            images = [(row[column], file_state(folder / row[column])) for row in self._split_rows(split)]
            self._prints[split] = digest({"folder": str(folder.resolve()), "split": split, "images": images})
        return self._prints[split]

    def labels(self, split: str) -> np.ndarray | None:
        if not self.spec.label_column:
            return None
        values = [row[self.spec.label_column] for row in self._split_rows(split)]
        return encode_labels(values, self.class_names(), f"{self.table_path} split '{split}'")

    def images(self, split: str) -> FolderImages:
        folder = self.table_path.parent
        return FolderImages([folder / row[self.spec.image_column] for row in self._split_rows(split)])

    def records(self, split: str) -> list[dict] | None:
        spec, rows = self.spec, self._split_rows(split)
        column = lambda name: [row[name] for row in rows] if name else None  # noqa: E731
        return records_from_columns(column(spec.question_column), column(spec.answer_column),
                                    column(spec.text_column), f"{self.table_path} split '{split}'")
