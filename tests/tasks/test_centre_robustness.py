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
    with pytest.raises(HarnessError, match="mine: 3 tiles but slide/centre/subset columns"):
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
