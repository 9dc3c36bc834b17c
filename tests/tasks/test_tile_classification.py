"""The tile family on plain arrays: separable data scores high, noise scores at chance."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score
from sklearn.neighbors import KNeighborsClassifier

from harness.evaluation import SplitArrays, TaskData
from harness.tasks.tile_classification import TileClassification, TileClassificationParams

FAST = dict(max_steps=2000, eval_every=100, patience=500, seeds=[0, 1, 2], bootstrap_resamples=200)


def blobs(n_per_class: int, n_classes: int, dim: int, separation: float, seed: int) -> SplitArrays:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(n_classes, dim)) * separation
    labels = np.repeat(np.arange(n_classes), n_per_class)
    return SplitArrays((centres[labels] + rng.normal(size=(len(labels), dim))).astype(np.float32), labels)


def data(separation: float, splits=("train", "val", "test")) -> TaskData:
    sizes = {"train": 60, "val": 20, "test": 40}
    return TaskData({s: blobs(sizes[s], 4, 16, separation, seed=i) for i, s in enumerate(splits)},
                    class_names=list("abcd"))


def test_separable_classes_score_near_one():
    params = TileClassificationParams(**FAST)
    result = TileClassification().evaluate(data(separation=3.0), params)
    accuracy = result.metrics["balanced_accuracy"]
    assert accuracy.mean > 0.95 and accuracy.ci95[0] <= accuracy.mean <= accuracy.ci95[1]
    assert result.metrics["macro_auroc"].mean > 0.98
    assert result.seeds == [0, 1, 2] and result.n_samples == {"train": 240, "val": 80, "test": 160}


def test_noise_scores_at_chance():
    result = TileClassification().evaluate(data(separation=0.0), TileClassificationParams(**FAST))
    assert abs(result.metrics["balanced_accuracy"].mean - 0.25) < 0.1
    assert abs(result.metrics["macro_auroc"].mean - 0.5) < 0.1


def test_knn_matches_sklearn_cosine_knn():
    task = data(separation=1.0)
    result = TileClassification().evaluate(task, TileClassificationParams(**FAST))
    train, test = task.splits["train"], task.splits["test"]
    for k in (1, 20):
        knn = KNeighborsClassifier(n_neighbors=k, metric="cosine").fit(train.embeddings, train.labels)
        expected = balanced_accuracy_score(test.labels, knn.predict(test.embeddings))
        assert result.metrics[f"knn{k}_balanced_accuracy"].mean == pytest.approx(expected)


def test_the_logistic_probe_is_scikit_learns_on_train_and_val_together():
    """`probe: logistic` (UNI's protocol): one fit on train + val, C = d * K / 100, whose test
    predictions are scikit-learn's LogisticRegression's on the same rows; one seed is reported."""
    from sklearn.linear_model import LogisticRegression

    task = data(separation=0.7)
    result = TileClassification().evaluate(task, TileClassificationParams(**FAST, probe="logistic"))
    train, val, test = (task.splits[s] for s in ("train", "val", "test"))
    reference = LogisticRegression(C=16 * 4 / 100, solver="newton-cg", tol=1e-10).fit(
        np.concatenate([train.embeddings, val.embeddings]).astype(np.float64), np.concatenate([train.labels, val.labels]))
    expected = balanced_accuracy_score(test.labels, reference.predict(test.embeddings.astype(np.float64)))
    assert result.metrics["balanced_accuracy"].mean == pytest.approx(expected)
    assert 0.4 < expected < 0.95  # overlapping classes: a wrong fit would show
    assert result.seeds == [0] and result.details["probe"] == "logistic" and result.details["trained_on"] == 320
    assert result.details["cost"] == pytest.approx(0.64) and "probe_best_steps" not in result.details


def test_missing_val_is_held_out_of_train_and_missing_test_reports_val():
    no_val = TileClassification().evaluate(data(3.0, splits=("train", "test")), TileClassificationParams(**FAST))
    assert no_val.n_samples["val"] == 24 and no_val.n_samples["train"] == 216
    no_test = TileClassification().evaluate(data(3.0, splits=("train", "val")), TileClassificationParams(**FAST))
    assert no_test.details["eval_split"] == "val" and no_test.n_samples["test"] == 80


def test_the_probe_reports_its_calibration_and_a_reliability_diagram():
    """Each seed's softmax is scored by the five calibration errors (lower is better), with a
    bootstrap interval; the diagram's bins hold every test item of every seed, and the ECE is the
    diagram's item-weighted |accuracy - confidence| averaged over seeds (not pooled)."""
    from harness.scoring.calibration import CALIBRATION_METRICS

    params = TileClassificationParams(**FAST)
    result = TileClassification().evaluate(data(separation=1.0), params)
    info = TileClassification.metrics(params)
    for name in CALIBRATION_METRICS:
        metric = result.metrics[name]
        assert not info[name].higher_is_better and info[name].group == "calibration"
        # a calibration error is biased upwards on a resample (duplicated items fill bins unevenly), so its
        # percentile interval need not hold the estimate: only that it is an interval in [0, 1]
        assert 0.0 <= metric.mean <= 1.0 and 0.0 <= metric.ci95[0] <= metric.ci95[1] <= 1.0 and len(metric.values) == 3
    diagram = result.details["reliability"]
    assert sum(diagram["items"]) == 3 * 160 and diagram["lower"][0] == 0.0 and diagram["upper"][-1] == 1.0
    filled = [i for i, n in enumerate(diagram["items"]) if n]
    assert all(0.0 <= diagram["accuracy"][i] <= 1.0 and diagram["lower"][i] <= diagram["confidence"][i] <= diagram["upper"][i]
               for i in filled)
    assert result.metrics["mce"].mean >= result.metrics["ece"].mean - 1e-12


def test_few_shot_curve_rises_with_shots_and_skips_what_the_classes_cannot_give():
    params = TileClassificationParams(**FAST, fewshot_shots=[1, 4, 16, 64], fewshot_draws=200)
    result = TileClassification().evaluate(data(separation=1.0), params)
    one, four, sixteen = (result.metrics[f"fewshot{k}_balanced_accuracy"] for k in (1, 4, 16))
    assert 0.25 < one.mean < four.mean < sixteen.mean <= 1.0  # more shots, better centroids
    assert one.ci95[0] < one.mean < one.ci95[1] and one.std > sixteen.std  # one image per class varies most
    assert "fewshot64_balanced_accuracy" not in result.metrics  # 60 training images per class
    assert result.details["few_shot"]["skipped_shots"]["shots"] == [64]
    assert set(result.details["few_shot"]["vote_balanced_accuracy"]) == {1, 4, 16}
