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


# PathoROB tolkach_esca's constants (pathorob/apd/utils.py load_data) and, per in-domain (centre, class),
# the nine cases its tolkach_esca.csv holds there (100 tiles each), in the table's order
TOLKACH_IN = ["VALSET2_WNS", "VALSET4_CHA_FULL"]
TOLKACH_OUT = ["VALSET1_UKK", "VALSET3_TCGA"]
TOLKACH_CLASSES = ["TUMOR", "MUSC_PROP", "SH_OES", "SH_MAG", "REGR_TU", "ADVENT"]
TOLKACH_CASES = {
    "VALSET2_WNS": {
        "TUMOR": [24, 29, 28, 23, 21, 20, 18, 25, 27],
        "MUSC_PROP": [19, 28, 31, 23, 21, 18, 25, 26, 27],
        "SH_OES": [24, 29, 28, 31, 21, 18, 25, 26, 27],
        "SH_MAG": [24, 19, 31, 23, 21, 18, 25, 26, 27],
        "REGR_TU": [30, 24, 29, 22, 23, 21, 18, 25, 27],
        "ADVENT": [30, 24, 29, 28, 23, 21, 25, 26, 27],
    },
    "VALSET4_CHA_FULL": {
        "TUMOR": [73, 65, 56, 53, 76, 62, 66, 74, 63],
        "MUSC_PROP": [70, 54, 60, 77, 59, 76, 71, 61, 58],
        "SH_OES": [70, 53, 48, 69, 59, 57, 75, 51, 72],
        "SH_MAG": [65, 55, 70, 67, 52, 77, 59, 76, 58],
        "REGR_TU": [64, 70, 67, 49, 59, 76, 68, 47, 62],
        "ADVENT": [70, 48, 69, 59, 76, 61, 75, 58, 50],
    },
}


def tolkach_apd_fixture() -> tuple[pd.DataFrame, np.ndarray]:
    """PathoROB tolkach_esca's APD layout at its sizes (2 in-domain centres x 6 classes x 9 cases x 100
    tiles, each case id PathoROB's, so that its feasible test-case splits apply; 2 out-of-domain centres
    x 6 classes x 20 tiles), 4-d embeddings."""
    rng = np.random.default_rng(16)
    class_axes, centre_axes = rng.normal(size=(6, 4)), rng.normal(size=(4, 4))
    rows, vectors = [], []
    for ci, centre in enumerate(TOLKACH_IN + TOLKACH_OUT):
        for bi, label in enumerate(TOLKACH_CLASSES):
            cases = TOLKACH_CASES[centre][label] if centre in TOLKACH_IN else [900 + ci]
            for case in cases:
                shift = rng.normal(scale=0.4, size=4)
                for t in range(100 if centre in TOLKACH_IN else 20):
                    rows.append({"subset": "ID" if centre in TOLKACH_IN else "OOD", "slide_id": f"case_{case:03d}",
                                 "patch_id": f"{label.lower()}.{t}", "biological_class": label,
                                 "medical_center": centre})
                    vectors.append(0.5 * class_axes[bi] + 0.8 * centre_axes[ci] + shift + rng.normal(size=4))
    return pd.DataFrame(rows), np.asarray(vectors, dtype=np.float32)
