"""Whole-slide datasets: a CSV of slides (path, patient, label or survival) read with OpenSlide.

A slide source is not a tile source: the runner asks it for the slide table and embeds each
slide's tiles (harness/slides/slide_embedding.py). The CSV sits under the dataset's root
(`root_env` if set, else --data-root); slide paths are relative to the CSV. A missing slide
file is not an error here: it is reported as a failed slide when embedding.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import HarnessError
from harness.registry import SynthDataset, TilingSpec, WsiDataset
from harness.sources.base import (
    Availability, DataContext, Source, check_table_cells, check_table_paths, digest, file_state, path_key,
    read_table_rows,
)


@dataclass
class SlideTable:
    paths: list[Path]
    patients: list[str]
    labels: np.ndarray | None  # class indices
    times: np.ndarray | None
    events: np.ndarray | None  # bool: event observed
    folds: np.ndarray | None  # predefined fold per slide


@dataclass(frozen=True)
class SlideColumns:
    slide: str = "slide"
    patient: str = "patient"
    label: str | None = None
    time: str | None = None
    event: str | None = None
    fold: str | None = None


class SlideSource(Source):
    """Whole slides listed in a table (one row per slide: file, patient, label or survival)."""

    kind = "slides"

    def __init__(self, name: str, spec: WsiDataset | SynthDataset, context: DataContext):
        super().__init__(name, spec, context)
        self.columns = self._columns()
        self.classes = list(getattr(spec, "classes", []))

    def _columns(self) -> SlideColumns:
        spec = self.spec
        return SlideColumns(spec.slide_column, spec.patient_column, spec.label_column, spec.time_column,
                            spec.event_column, spec.fold_column)

    @property
    def tiling(self) -> TilingSpec:
        return self.spec.tiling

    @property
    def csv_path(self) -> Path:
        root = os.environ.get(self.spec.root_env) if self.spec.root_env else None
        return Path(root or self.context.data_root).expanduser() / self.spec.path

    def availability(self) -> Availability:
        if self.csv_path.is_file():
            return Availability(ok=True)
        where = f" (or set {self.spec.root_env})" if self.spec.root_env else ""
        return Availability(ok=False, reason=f"no slide table at {self.csv_path}: point --data-root at the folder "
                                             f"holding {self.spec.path}{where}. {self.spec.instructions}".strip())

    def prepare(self) -> None:
        self.table()

    def fingerprint(self) -> str:
        """The table, the tiling, and each slide's size and modification time (as each slide's
        embeddings are keyed): a slide scanned again under its name scores the task again, where its
        result was reused. A slide that is not there has none; reading it names it."""
        content = hashlib.sha256(self.csv_path.read_bytes()).hexdigest()
        folder, column = self.csv_path.parent, self.columns.slide
        return digest({"table": content, "tiling": self.tiling.model_dump(), "spec": self.spec.model_dump(),
                       "slides": [file_state(folder / row[column]) for row in self._rows()]})

    def class_names(self) -> list[str]:
        if self.classes:
            return self.classes
        return sorted({row[self.columns.label] for row in self._rows()}) if self.columns.label else []

    def _rows(self) -> list[dict]:
        rows, starts = read_table_rows(self.csv_path, "slide table")
        c = self.columns
        needed = [name for name in (c.slide, c.patient, c.label, c.time, c.event, c.fold) if name]
        missing = [c for c in needed if rows and c not in rows[0]]
        if not rows or missing:
            raise HarnessError(f"{self.csv_path}: " + (f"missing column(s) {missing}" if rows else "no rows")
                               + f"; the dataset '{self.name}' expects columns {needed}")
        check_table_cells(rows, [name for name in (c.slide, c.patient, c.label) if name], self.csv_path, starts)
        check_table_paths([row[c.slide] for row in rows], c.slide, self.csv_path, starts)
        first: dict[str, int] = {}
        for line, row in zip(starts, rows):  # one row per slide: a slide twice is weighted twice, or in two folds
            slide = path_key(row[c.slide])
            if slide in first:
                raise HarnessError(f"{self.csv_path}: line {line} names slide '{row[c.slide]}' again (first on line "
                                   f"{first[slide]}); a slide table has one row per slide: remove one")
            first[slide] = line
        return rows

    def table(self) -> SlideTable:
        rows, c = self._rows(), self.columns
        where = f"{self.csv_path}"

        def column(name, convert, check=None, expect="a number"):
            """One column as numbers; a bad cell names the CSV, its line and the column."""
            if not name:
                return None
            values = []
            for line, row in enumerate(rows, start=2):  # line 1 is the header
                cell = row.get(name)
                try:
                    value = convert(cell)
                    if not np.isfinite(value) or (check and not check(value)):
                        raise ValueError
                except (TypeError, ValueError):
                    shown = "empty" if cell in (None, "") else repr(cell)
                    raise HarnessError(f"{where}: line {line}, column '{name}': {shown} is not {expect}; fix the "
                                       "table") from None
                values.append(value)
            return np.array(values)

        labels = None
        if c.label:
            classes = self.class_names()
            unknown = sorted({row[c.label] for row in rows} - set(classes))
            if unknown:
                raise HarnessError(f"{where}: labels {unknown[:3]} are not among the classes {classes}")
            labels = np.array([classes.index(row[c.label]) for row in rows], dtype=np.int64)
        events = column(c.event, float, lambda v: v in (0, 1), "0 or 1 (1 = the event was observed)")
        times = column(c.time, float, lambda v: v >= 0, "a time >= 0")
        patients = [row[c.patient] for row in rows]
        for name, values in ((c.time, times), (c.event, events)):  # survival is scored per patient
            if values is not None:
                self._same_per_patient(patients, values, name)
        return SlideTable(
            paths=[self.csv_path.parent / row[c.slide] for row in rows],
            patients=patients, labels=labels, times=times,
            events=None if events is None else events.astype(bool), folds=column(c.fold, int),
        )

    def _same_per_patient(self, patients: list[str], values: np.ndarray, column: str) -> None:
        """A patient's slides carry one survival time and event (the C-index reads the patient's
        first slide's: a second value was dropped without a word)."""
        first: dict[str, int] = {}
        for row, patient in enumerate(patients):
            seen = first.setdefault(patient, row)
            if values[row] != values[seen]:
                raise HarnessError(f"{self.csv_path}: patient '{patient}' has {column} {values[seen]:g} on line "
                                   f"{seen + 2} and {values[row]:g} on line {row + 2}; survival is per patient: give "
                                   "each of their slides the same time and event")

    def tile_latents(self, slide: Path, coords: np.ndarray) -> np.ndarray | None:
        """Ground truth per tile of the slide at this path (synthetic slides only)."""
        return None

    def download(self) -> str:
        return f"{self.name}: slides are not downloaded by the harness. {self.availability().reason}"

