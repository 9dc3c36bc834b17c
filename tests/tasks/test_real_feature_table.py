"""Metric code at real scale: the tile-classification kNN, the logistic probe and balanced
accuracy on the real Kather-2016 texture table (5,000 CRC H&E tiles x 49 features,
tests/assets/kather2016) equal scikit-learn's KNeighborsClassifier, LogisticRegression and
balanced_accuracy_score set up the same way."""

from pathlib import Path

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

from harness.scoring.logistic_probe import fit_logistic_probe, uni_cost
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


def test_logistic_probe_reaches_scikit_learns_optimum_on_the_real_table(table):
    """The same strictly convex problem (multinomial, L2 on the weights, C = UNI's d*K/100 = 3.92)
    solved by our L-BFGS and by scikit-learn's Newton-CG run to tol 1e-12: the objective within 1e-7
    of scikit-learn's optimum, the same predictions, probabilities within 2e-3 (the objective is
    flat along some directions, so the weights agree to ~1e-3 only)."""
    features, labels, train, test = table
    features = features.astype(np.float64)
    mean, std = features[train].mean(0), features[train].std(0)
    x_train, x_test = (features[train] - mean) / std, (features[test] - mean) / std
    cost = uni_cost(49, 8)
    ours = fit_logistic_probe(x_train, labels[train], 8)
    reference = LogisticRegression(C=cost, solver="newton-cg", tol=1e-12, max_iter=1000).fit(x_train, labels[train])

    logits = x_train @ reference.coef_.T + reference.intercept_
    log_p = logits - logits.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    optimum = -log_p[np.arange(len(train)), labels[train]].mean() + (reference.coef_ ** 2).sum() / (2 * cost * len(train))
    assert ours.cost == cost and 0 <= ours.loss - optimum < 1e-7 * optimum
    probabilities = softmax(ours.predict_logits(x_test), axis=1)
    np.testing.assert_array_equal(probabilities.argmax(1), reference.predict(x_test))
    np.testing.assert_allclose(probabilities, reference.predict_proba(x_test), atol=2e-3)
    assert balanced_accuracy(labels[test], probabilities.argmax(1)) > 0.8  # real class structure


def test_a_logistic_probes_cost_must_be_positive(table):
    features, labels, train, _ = table
    with pytest.raises(ValueError, match="cost C must be positive, got 0"):
        fit_logistic_probe(features[train], labels[train], 8, cost=0)
