"""Metric code at real scale: the tile-classification kNN and balanced accuracy on the real
Kather-2016 texture table (5,000 CRC H&E tiles x 49 features, tests/assets/kather2016) equal
scikit-learn's KNeighborsClassifier and balanced_accuracy_score set up the same way."""

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

from harness.scoring.metrics import balanced_accuracy, cosine_knn_predict

TABLE = Path(__file__).parents[1] / "assets" / "kather2016" / "best3.npz"


@pytest.fixture(scope="module")
def table():
    data = np.load(TABLE, allow_pickle=False)
    features, labels = data["features"], data["labels"]
    assert features.shape == (5000, 49) and np.bincount(labels).tolist() == [625] * 8
    train, test = train_test_split(np.arange(5000), test_size=0.2, stratify=labels, random_state=0)
    return features, labels, train, test


@pytest.mark.parametrize("k", [1, 5, 20])
def test_knn_equals_scikit_learn_on_the_real_table(table, k):
    features, labels, train, test = table
    ours = cosine_knn_predict(features[train], labels[train], features[test], k)
    reference = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute").fit(
        features[train], labels[train]).predict(features[test])
    np.testing.assert_array_equal(ours, reference)
    assert balanced_accuracy(labels[test], ours) == pytest.approx(balanced_accuracy_score(labels[test], reference))
    assert balanced_accuracy(labels[test], ours) > 0.5  # real class structure: well above 1/8
