"""The centre_robustness family on tiles whose slide and centre are known: a representation of
biology scores robust, one of the centre does not; bad origins are refused with one line."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from harness.evaluation import SplitArrays, TaskData
from harness.synth.domains import STAININGS
from harness.synth.tile_suite import SyntheticTileParams, plan_tiles, tile_protocol
from harness.tasks.centre_robustness import CentreRobustness, CentreRobustnessParams

CLASSES = ["benign", "malignant"]


def tiles(weight_class: float, weight_centre: float, seed: int = 0) -> TaskData:
    """Two splits; centres A, B (in domain) and C (out of domain); 14 tiles per (centre, class) and
    split half, each its own slide; embeddings = class axis x weight + centre axis x weight + noise."""
    rng = np.random.default_rng(seed)
    class_axes, centre_axes = rng.normal(size=(2, 16)), rng.normal(size=(3, 16))
    splits = {}
    for name in ("train", "test"):
        labels, centres = np.meshgrid(np.arange(2), np.arange(3), indexing="ij")
        labels, centres = np.repeat(labels.ravel(), 7), np.repeat(centres.ravel(), 7)
        x = weight_class * class_axes[labels] + weight_centre * centre_axes[centres] + rng.normal(size=(len(labels), 16))
        splits[name] = SplitArrays(
            embeddings=x.astype(np.float32), labels=labels,
            slides=np.array([f"{name}-{i}" for i in range(len(labels))]),
            centres=np.array(["A", "B", "C"])[centres])
    return TaskData(splits=splits, class_names=CLASSES)


PARAMS = CentreRobustnessParams.model_validate({
    "in_domain": ["A", "B"], "apd": {"base": 1, "patches_per_slide": 2, "repetitions": 3},
    "clustering": {"max_k": 4, "trials": 3}, "bootstrap_resamples": 200})


def test_biology_scores_robust_and_centre_does_not():
    biology = CentreRobustness().evaluate(tiles(3.0, 0.3), PARAMS)
    centre = CentreRobustness().evaluate(tiles(0.6, 4.0), PARAMS)
    assert set(biology.metrics) == set(CentreRobustness.metrics(PARAMS)) == {
        "robustness_index", "knn_balanced_accuracy", "apd_in_domain", "apd_out_of_domain", "clustering_score"}
    assert biology.metrics["robustness_index"].mean > 0.95
    assert centre.metrics["robustness_index"].mean < 0.5
    assert centre.metrics["robustness_index"].ci95[1] < biology.metrics["robustness_index"].ci95[0]
    assert biology.metrics["clustering_score"].mean > centre.metrics["clustering_score"].mean + 0.3
    assert biology.details["in_domain"] == ["A", "B"] and biology.details["out_of_domain"] == ["C"]
    # 2 classes, 2 in-domain centres in equal shares: a random neighbour is SO with p 1/4, OS with p 1/4
    assert biology.details["chance_robustness_index"] == pytest.approx(0.5, abs=0.02)
    assert biology.n_samples == {"tiles": 56, "out_of_domain_tiles": 28, "centres": 2, "slides": 56}
    low, high = biology.metrics["apd_in_domain"].ci95
    assert low <= biology.metrics["apd_in_domain"].mean <= high
    assert len(biology.metrics["apd_in_domain"].values) == 3  # one APD per repetition


def test_the_dataset_marks_decide_the_domains_when_the_task_does_not():
    data = tiles(3.0, 0.3)
    for split in data.splits.values():
        split.subsets = np.where(split.centres == "C", "OOD", "ID")
    params = PARAMS.model_copy(update={"in_domain": None})
    result = CentreRobustness().evaluate(data, params)
    assert result.details["in_domain"] == ["A", "B"] and result.details["out_of_domain"] == ["C"]


def test_without_origins_or_with_unknown_centres_one_line_says_what_to_do():
    data = tiles(1.0, 1.0)
    data.splits["test"].centres = None
    with pytest.raises(ValueError, match="split 'test' has none .*centre_column"):
        CentreRobustness().evaluate(data, PARAMS)
    with pytest.raises(ValueError, match=r"in_domain centres \['Z'\] are not in the data \(centres: \['A', 'B', 'C'\]\)"):
        CentreRobustness().evaluate(tiles(1.0, 1.0), PARAMS.model_copy(update={"in_domain": ["A", "Z"]}))
    with pytest.raises(ValueError, match=r"APD base 1 needs 16 tiles in every \(centre, class\) group; A/benign has 14"):
        CentreRobustness().evaluate(tiles(1.0, 1.0), PARAMS.model_copy(
            update={"apd": PARAMS.apd.model_copy(update={"patches_per_slide": 4})}))


def test_synthetic_centres_are_staining_protocols_drawn_independently_of_the_tissue():
    params = SyntheticTileParams.model_validate({"tile_size": 224, "per_class": {"train": 60, "val": 20, "test": 40},
                                                 "seed": 0})
    pairs = Counter((tile_protocol(params, split, r.index), r.label)
                    for split, recipes in plan_tiles(params).items() for r in recipes)
    centres = {c for c, _ in pairs}
    assert centres == set(STAININGS)
    assert all(pairs[(c, label)] >= 15 for c in centres for label in range(6))  # every tissue at every centre
    assert tile_protocol(params, "test", 3) == tile_protocol(params, "test", 3)


def test_origin_names_are_bounded_printable_text():
    from harness.errors import HarnessError
    from harness.sources.base import TileOrigins

    TileOrigins(["s1", "s2"], ["A", "B"]).check(2, "mine")
    with pytest.raises(HarnessError, match="mine: 3 tiles but slide/centre/subset/patch columns"):
        TileOrigins(["s1", "s2"], ["A", "B"]).check(3, "mine")
    with pytest.raises(HarnessError, match="a centre name is not printable text of at most 200"):
        TileOrigins(["s1", "s2"], ["A", "B" * 10_000]).check(2, "mine")
    with pytest.raises(HarnessError, match="a slide name is not printable"):
        TileOrigins(["s1", "s\n2"], ["A", "B"]).check(2, "mine")


PAIRED = CentreRobustnessParams.model_validate({
    "pairs": "class_and_centre_pairs", "apd": None, "clustering": None, "bootstrap_resamples": 200})


def test_paired_evaluation_builds_every_class_pair_at_every_centre_pair():
    data = tiles(3.0, 0.3)
    result = CentreRobustness().evaluate(data, PAIRED)
    assert set(result.metrics) == set(CentreRobustness.metrics(PAIRED)) == {"robustness_index", "knn_balanced_accuracy"}
    # 1 class pair x 3 centre pairs (every centre in domain: no marks, no in_domain); a tile in 2 of them
    assert result.n_samples == {"tiles": 84, "rows": 168, "pair_subsets": 3, "centres": 3, "slides": 84}
    assert result.details["chance_robustness_index"] == pytest.approx(0.5, abs=0.02)
    centre = CentreRobustness().evaluate(tiles(0.6, 4.0), PAIRED)
    assert centre.metrics["robustness_index"].ci95[1] < result.metrics["robustness_index"].ci95[0]
    two = CentreRobustness().evaluate(data, PAIRED.model_copy(update={"in_domain": ["A", "B"]}))
    assert two.n_samples["pair_subsets"] == 1 and two.n_samples["rows"] == 56


def test_paired_evaluation_reads_the_datasets_own_pair_subsets_and_leaves_out_ood():
    data = tiles(3.0, 0.3)
    for split in data.splits.values():
        split.subsets = np.select([split.centres == "C", split.centres == "A"], ["OOD", "pair-1"], "pair-2")
    with pytest.raises(ValueError, match="pair subset 'pair-1' needs two classes and two centres"):
        CentreRobustness().evaluate(data, PAIRED.model_copy(update={"pairs": "subsets"}))
    for split in data.splits.values():
        split.subsets = np.where(split.centres == "C", "OOD", "A+B")
    result = CentreRobustness().evaluate(data, PAIRED.model_copy(update={"pairs": "subsets"}))
    assert result.n_samples["pair_subsets"] == 1 and result.n_samples["rows"] == 56
    data.splits["train"].subsets = data.splits["test"].subsets = None
    with pytest.raises(ValueError, match="pairs: subsets needs the dataset's subset column"):
        CentreRobustness().evaluate(data, PAIRED.model_copy(update={"pairs": "subsets"}))


def test_paired_evaluation_refuses_apd_and_clustering_in_one_line():
    with pytest.raises(ValueError, match="pairs scores the robustness index only"):
        CentreRobustnessParams.model_validate({"pairs": "subsets"})
    with pytest.raises(ValueError, match="Input should be 'subsets' or 'class_and_centre_pairs'"):
        CentreRobustnessParams.model_validate({"pairs": "all", "apd": None, "clustering": None})


def test_the_tcga_apd_schedule_runs_through_the_family_on_four_centres_and_four_classes():
    from tests.harness.scoring.pathorob_fixture import TCGA_CLASSES, TCGA_IN, TCGA_OUT, _table, fewer_ood_slides

    # the schedule's smallest layout: 10 slides of 4 tiles per in-domain (centre, class), one out of domain
    meta, x = _table(TCGA_IN + TCGA_OUT, TCGA_CLASSES, 10, 4, 4, np.random.default_rng(16),
                     subset_of=lambda c: "ID" if c in TCGA_IN else "OOD", class_signal=0.7, centre_signal=0.8)
    meta, x = fewer_ood_slides(meta, x, 1)
    labels = np.array([TCGA_CLASSES.index(c) for c in meta.biological_class])
    data = TaskData(splits={"test": SplitArrays(embeddings=x, labels=labels, slides=meta.slide_id.to_numpy(),
                                                centres=meta.medical_center.to_numpy())}, class_names=TCGA_CLASSES)
    params = CentreRobustnessParams.model_validate({
        "in_domain": TCGA_IN, "out_of_domain": TCGA_OUT, "clustering": None, "bootstrap_resamples": 0,
        "apd": {"schedule": "four_by_four", "patches_per_slide": 4, "repetitions": 2}})
    result = CentreRobustness().evaluate(data, params)
    assert len(result.details["apd_accuracy_by_split"]["in_domain"]) == 7
    assert result.metrics["apd_in_domain"].mean < -0.05  # the fixture's centres carry a shortcut: accuracy drops
    tiny = params.model_copy(update={"apd": params.apd.model_copy(update={"patches_per_slide": 3})})
    with pytest.raises(ValueError, match="APD split 0 has no validation tiles with 3 tiles per slide"):
        CentreRobustness().evaluate(data, tiny)
    two = params.model_copy(update={"apd": params.apd.model_copy(update={"schedule": "two_centre"})})
    with pytest.raises(ValueError, match="the two-centre schedule needs two in-domain centres"):
        CentreRobustness().evaluate(data, two)


def camelyon_reduced_data(extra: int = 40, drop: int = 0, seed: int = 0) -> tuple[TaskData, list[dict]]:
    """Tiles named as PathoROB's camelyon_reduced table names them (shuffled, `drop` of them left
    out), plus `extra` in-domain tiles the table does not list; embeddings = class axis + noise."""
    import csv
    from importlib.resources import files

    with files("harness").joinpath("data", "pathorob", "camelyon_reduced.csv").open(newline="") as handle:
        table = list(csv.DictReader(handle))
    rng = np.random.default_rng(seed)
    rows = [table[i] for i in rng.permutation(len(table))[drop:]]
    rows += [{"slide_id": f"extra-{i}", "patch_id": str(i), "biological_class": ["normal", "tumor"][i % 2],
              "medical_center": "RUMC"} for i in range(extra)]
    labels = np.array([{"normal": 0, "tumor": 1}[r["biological_class"]] for r in rows])
    x = 0.4 * rng.normal(size=(2, 8))[labels] + rng.normal(size=(len(rows), 8))  # weak: k-means sees the order
    split = SplitArrays(embeddings=x.astype(np.float32), labels=labels,
                        slides=np.array([r["slide_id"] for r in rows]), centres=np.array([r["medical_center"] for r in rows]),
                        patches=np.array([r["patch_id"] for r in rows]))
    return TaskData(splits={"tiles": split}, class_names=["normal", "tumor"]), table


REDUCED = CentreRobustnessParams.model_validate({
    "in_domain": ["RUMC", "UMCU"], "apd": None, "max_k": 21, "bootstrap_resamples": 50,
    "clustering": {"max_k": 3, "trials": 2, "rows": "camelyon_reduced"}})


def test_pathorobs_reduced_table_chooses_the_clustered_tiles_in_its_order():
    """clustering.rows: the 4,000 tiles camelyon_reduced lists, found by slide and patch id among 4,040
    shuffled ones and read in the table's order, score what PathoROB's code would score on them."""
    from harness.scoring.pathorob_metrics import clustering_score

    data, table = camelyon_reduced_data()
    result = CentreRobustness().evaluate(data, REDUCED)
    split = data.splits["tiles"]
    position = {(s, p): i for i, (s, p) in enumerate(zip(split.slides, split.patches))}
    order = [position[(r["slide_id"], r["patch_id"])] for r in table]
    expected = clustering_score(split.embeddings[order], np.array(["normal", "tumor"])[split.labels[order]],
                                split.centres[order], max_k=3, trials=2)
    assert result.details["clustering"]["tiles"] == 4000 and result.details["clustering"]["rows"] == "camelyon_reduced"
    assert result.metrics["clustering_score"].mean == pytest.approx(expected.value, abs=1e-12)
    assert result.n_samples["tiles"] == 4040 and result.details["index_tiles"] == 4040  # the index reads them all


def test_a_reduced_table_that_the_data_cannot_serve_is_one_line():
    data, _ = camelyon_reduced_data(drop=3)
    with pytest.raises(ValueError, match=r"^3 of the 4000 tiles of PathoROB's camelyon_reduced are not in the data"):
        CentreRobustness().evaluate(data, REDUCED)
    data, _ = camelyon_reduced_data()
    data.splits["tiles"].patches = None
    with pytest.raises(ValueError, match="declare the dataset's patch_column"):
        CentreRobustness().evaluate(data, REDUCED)
    data, table = camelyon_reduced_data(extra=0)
    split = data.splits["tiles"]
    first = int(np.flatnonzero((split.slides == table[0]["slide_id"]) & (split.patches == table[0]["patch_id"]))[0])
    split.labels[first] = 1 - split.labels[first]
    with pytest.raises(ValueError, match="in PathoROB's camelyon_reduced: the dataset is not the one the table describes"):
        CentreRobustness().evaluate(data, REDUCED)
    with pytest.raises(ValueError, match="index_rows selects rows for the unpaired index"):
        CentreRobustnessParams.model_validate({"pairs": "subsets", "apd": None, "clustering": None,
                                               "index_rows": "tolkach_esca_reduced"})


def test_the_family_passes_pathorobs_case_splits_to_apd():
    """apd.test_cases: tolkach_splits (PathoROB's feasible case splits) reaches the APD with each
    tile's case: its accuracies are those of the metric called with the same constraint, not the
    unconstrained ones."""
    from harness.scoring.pathorob_metrics import performance_drop
    from harness.tasks.centre_robustness import feasible_test_cases, slides_together
    from tests.harness.scoring.pathorob_fixture import TOLKACH_CLASSES, TOLKACH_IN, TOLKACH_OUT, tolkach_apd_fixture

    meta, x = tolkach_apd_fixture()
    labels = np.array([TOLKACH_CLASSES.index(c) for c in meta.biological_class])
    split = SplitArrays(embeddings=x, labels=labels, slides=meta.slide_id.to_numpy(),
                        centres=meta.medical_center.to_numpy(), subsets=meta.subset.to_numpy())
    params = CentreRobustnessParams.model_validate({
        "in_domain": TOLKACH_IN, "out_of_domain": TOLKACH_OUT, "max_k": 5, "clustering": None, "bootstrap_resamples": 20,
        "apd": {"base": 3, "patches_per_slide": 100, "repetitions": 2, "test_cases": "tolkach_splits"}})
    result = CentreRobustness().evaluate(TaskData(splits={"tiles": split}, class_names=TOLKACH_CLASSES), params)
    order = slides_together(meta.slide_id.to_numpy())
    common = (x[order], meta.biological_class.to_numpy()[order], meta.medical_center.to_numpy()[order], TOLKACH_IN,
              TOLKACH_OUT, TOLKACH_CLASSES)
    constrained = performance_drop(*common, base=3, patches_per_slide=100, repetitions=2,
                                   slides=meta.slide_id.to_numpy()[order], test_cases=feasible_test_cases("tolkach_splits"))
    free = performance_drop(*common, base=3, patches_per_slide=100, repetitions=2)
    assert result.metrics["apd_in_domain"].values == pytest.approx(constrained.in_domain_scores, abs=1e-6)  # rounded
    assert constrained.in_domain_scores != pytest.approx(free.in_domain_scores, abs=1e-6)
