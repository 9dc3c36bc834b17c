"""The class names of the synthetic tile suites: importable without the renderer (the registry
checks a cross-cohort task's label sets when it loads, on the rerun path that imports no scipy)."""

from __future__ import annotations

TISSUE_CLASSES: tuple[str, ...] = ("tumour", "stroma", "lymphocytes", "adipose", "mucosa", "necrosis")

TASK_CLASSES: dict[str, tuple[str, ...]] = {  # a tile suite's `task` -> its classes, in label order
    "tissue": TISSUE_CLASSES,
    "grade": ("grade 1", "grade 2", "grade 3"),
    "mitosis": ("none", "a third", "two thirds"),
}
