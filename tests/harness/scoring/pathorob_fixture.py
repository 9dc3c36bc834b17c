"""Deterministic PathoROB-shaped tables: metadata in PathoROB's columns and embeddings in which
class, centre and slide each leave a trace. The same arrays were given to PathoROB's own code
(tests/assets/pathorob-reference/record.py) and its outputs recorded; the tests give them to ours.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# PathoROB's camelyon constants (pathorob/apd/utils.py load_data): two in-domain centres, three
# out-of-domain, 17 slides of 300 tiles per in-domain (centre, class)
CAMELYON_IN = ["RUMC", "UMCU"]
CAMELYON_OUT = ["CWZ", "RST", "LPON"]
CAMELYON_CLASSES = ["normal", "tumor"]


def _table(centres, classes, slides_per_group, tiles_per_slide, dim, rng, subset_of=lambda c: "ID",
           class_signal=1.0, centre_signal=1.0):
    class_axes = rng.normal(size=(len(classes), dim))
    centre_axes = rng.normal(size=(len(centres), dim))
    rows, vectors = [], []
    for ci, centre in enumerate(centres):
        for bi, label in enumerate(classes):
            for s in range(slides_per_group):
                slide = f"{centre}-{label}-{s:02d}"
                slide_shift = rng.normal(scale=0.4, size=dim)
                for t in range(tiles_per_slide):
                    rows.append({"subset": subset_of(centre), "slide_id": slide, "patch_id": str(t),
                                 "biological_class": label, "medical_center": centre})
                    vectors.append(class_signal * class_axes[bi] + centre_signal * centre_axes[ci]
                                   + slide_shift + rng.normal(size=dim))
    return pd.DataFrame(rows), np.asarray(vectors, dtype=np.float32)


def robustness_fixture() -> tuple[pd.DataFrame, np.ndarray]:
    """3 centres x 2 classes x 4 slides x 20 tiles (480 tiles, 8-d)."""
    return _table(["A", "B", "C"], ["benign", "malignant"], 4, 20, 8, np.random.default_rng(11),
                  class_signal=1.2, centre_signal=1.0)


def clustering_fixture() -> tuple[pd.DataFrame, np.ndarray]:
    """3 centres x 3 classes x 3 slides x 10 tiles (270 tiles, 8-d): 9 class-pair x centre-pair combinations."""
    return _table(["A", "B", "C"], ["x1", "x2", "x3"], 3, 10, 8, np.random.default_rng(12),
                  class_signal=1.5, centre_signal=1.2)


def apd_fixture() -> tuple[pd.DataFrame, np.ndarray]:
    """PathoROB camelyon's layout at its sizes (2 in-domain centres x 2 classes x 17 slides x 300 tiles,
    3 out-of-domain centres x 2 classes x 2 slides x 300 tiles), 4-d embeddings."""
    meta, x = _table(CAMELYON_IN + CAMELYON_OUT, CAMELYON_CLASSES, 17, 300, 4, np.random.default_rng(13),
                     subset_of=lambda c: "ID" if c in CAMELYON_IN else "OOD", class_signal=0.6, centre_signal=0.8)
    keep = (meta["subset"] == "ID") | (meta["slide_id"].str[-2:].astype(int) < 2)
    return meta[keep].reset_index(drop=True), x[keep.to_numpy()]
