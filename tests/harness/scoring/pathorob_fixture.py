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


def fewer_ood_slides(meta: pd.DataFrame, x: np.ndarray, slides: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Every in-domain tile, and the first `slides` slides of each out-of-domain (centre, class)."""
    keep = ((meta["subset"] == "ID") | (meta["slide_id"].str[-2:].astype(int) < slides)).to_numpy()
    return meta[keep].reset_index(drop=True), x[keep]


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
    return fewer_ood_slides(meta, x, 2)


# PathoROB's paired evaluation (its tcga_2x2 table): every subset is one pair of classes x pair of
# centres, and a tile may sit in several subsets. (classes, centres, slides per group, tiles per slide)
PAIRED_SUBSETS = {
    "A-B_c1-c2": (("A", "B"), ("c1", "c2"), 3, 15),
    "C-D_c3-c4": (("C", "D"), ("c3", "c4"), 4, 12),
    "A-C_c2-c3": (("A", "C"), ("c2", "c3"), 3, 14),
}


def paired_fixture() -> tuple[pd.DataFrame, np.ndarray]:
    """Three 2 x 2 subsets of 4 classes x 4 centres (8-d). Slide ids start with a 12-character case id
    (TCGA's, which PathoROB's paired code groups by); a slide in two subsets has the same tiles and
    embeddings in both."""
    rng = np.random.default_rng(14)
    class_axes = {c: rng.normal(size=8) for c in "ABCD"}
    centre_axes = {c: rng.normal(size=8) for c in ("c1", "c2", "c3", "c4")}
    tiles: dict[tuple[str, str, int], np.ndarray] = {}  # (class, centre, slide) -> its tiles, drawn once
    rows, vectors = [], []
    for subset, (classes, centres, n_slides, n_tiles) in PAIRED_SUBSETS.items():
        for label in classes:
            for centre in centres:
                for s in range(n_slides):
                    key = (label, centre, s)
                    if key not in tiles or len(tiles[key]) < n_tiles:
                        shift = rng.normal(scale=0.4, size=8)
                        tiles[key] = 1.1 * class_axes[label] + 1.0 * centre_axes[centre] + shift + rng.normal(
                            size=(n_tiles, 8))
                    slide = f"TCGA-{label}{centre}{s:02d}-01Z-00"
                    for t in range(n_tiles):
                        rows.append({"subset": subset, "slide_id": slide, "patch_id": str(t),
                                     "biological_class": label, "medical_center": centre})
                        vectors.append(tiles[key][t])
    return pd.DataFrame(rows), np.asarray(vectors, dtype=np.float32)


# PathoROB's tcga constants (pathorob/apd/utils.py load_data): four in-domain centres, four classes
# in this order (the schedule's diagonal pairs centre i with class i), 12 slides of 30 tiles each
TCGA_IN = ["Asterand", "Christiana Healthcare", "Roswell Park", "University of Pittsburgh"]
TCGA_OUT = ["Cureline", "Greater Poland Cancer Center", "International Genomics Consortium", "Johns Hopkins"]
TCGA_CLASSES = ["Breast_invasive_carcinoma", "Colon_adenocarcinoma", "Lung_adenocarcinoma",
                "Lung_squamous_cell_carcinoma"]


def tcga_apd_fixture() -> tuple[pd.DataFrame, np.ndarray]:
    """PathoROB tcga's APD layout at its sizes (4 in-domain centres x 4 classes x 12 slides x 30 tiles,
    4 out-of-domain centres x 4 classes x 1 slide x 30 tiles), 4-d embeddings."""
    meta, x = _table(TCGA_IN + TCGA_OUT, TCGA_CLASSES, 12, 30, 4, np.random.default_rng(15),
                     subset_of=lambda c: "ID" if c in TCGA_IN else "OOD", class_signal=0.7, centre_signal=0.8)
    return fewer_ood_slides(meta, x, 1)
