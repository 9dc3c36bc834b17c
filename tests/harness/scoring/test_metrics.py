"""Our metrics against the reference implementations on the same arrays."""

import numpy as np
import pytest
import torch
from scipy.special import softmax
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score
from torchmetrics.retrieval import RetrievalHitRate, RetrievalMAP

from harness.scoring.bootstrap import bootstrap_ci, bootstrap_mean_ci, resample_weights
from harness.scoring.metrics import (
    cosine_knn_predict,
    average_precision_at_k,
    balanced_accuracy,
    balanced_accuracy_from_confusion,
    confusion_matrices,
    macro_f1_from_confusion,
    cosine_top_k,
    hit_at_k,
    macro_auroc,
    macro_f1,
    majority_vote_at_k,
)


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 300)
    logits = rng.normal(size=(300, 5)) + 1.5 * np.eye(5)[y]
    return y, logits.argmax(1), softmax(logits, axis=1)


def test_balanced_accuracy_matches_sklearn(predictions):
    y, pred, _ = predictions
    assert balanced_accuracy(y, pred) == pytest.approx(balanced_accuracy_score(y, pred))


def test_balanced_accuracy_with_a_class_never_true(predictions):
    y, pred, _ = predictions
    keep = y != 4  # class 4 predicted but absent from y_true
    assert balanced_accuracy(y[keep], pred[keep]) == pytest.approx(balanced_accuracy_score(y[keep], pred[keep]))


def test_macro_f1_matches_sklearn(predictions):
    y, pred, _ = predictions
    assert macro_f1(y, pred) == pytest.approx(f1_score(y, pred, average="macro"))
    keep = y != 2
    assert macro_f1(y[keep], pred[keep]) == pytest.approx(f1_score(y[keep], pred[keep], average="macro"))


def test_macro_auroc_matches_sklearn(predictions):
    y, _, proba = predictions
    assert macro_auroc(y, proba) == pytest.approx(roc_auc_score(y, proba, multi_class="ovr", average="macro"))


def test_binary_auroc_matches_sklearn_with_ties():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    p1 = np.round(rng.random(200) * 0.5 + 0.4 * y, 1)  # rounded: many ties
    scores = np.stack([1 - p1, p1], axis=1)
    assert macro_auroc(y, scores) == pytest.approx(roc_auc_score(y, p1))


def test_cosine_top_k_matches_brute_force_in_chunks():
    rng = np.random.default_rng(2)
    queries, database = rng.normal(size=(37, 8)), rng.normal(size=(50, 8))
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    dn = database / np.linalg.norm(database, axis=1, keepdims=True)
    expected = np.argsort(-(qn @ dn.T), axis=1)[:, :7]
    np.testing.assert_array_equal(cosine_top_k(queries, database, 7, chunk_size=5), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cosine_knn_predicts_what_sklearn_predicts_ties_included(dtype):
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(0)
    for trial in range(40):
        n, d = int(rng.integers(5, 200)), int(rng.integers(2, 48))
        x = rng.standard_normal((n, d)).astype(dtype)
        y = rng.integers(0, int(rng.integers(2, 7)), n) * 3 + 1  # labels that are not 0..k-1
        test = rng.standard_normal((int(rng.integers(1, 120)), d)).astype(dtype)
        if trial % 2:  # exact distance ties: duplicated train rows, test rows equal to train rows
            x[: n // 2] = x[n // 2 : 2 * (n // 2)]
            test[:3] = x[:3]
        if trial % 4 == 0:  # coarse values: many tied distances and votes, and all-zero rows
            x, test = np.round(x / 2), np.round(test / 2)
        for k in (1, 4, 20):
            expected = KNeighborsClassifier(n_neighbors=min(k, n), metric="cosine", algorithm="brute").fit(x, y)
            np.testing.assert_array_equal(cosine_knn_predict(x, y, test, k), expected.predict(test))


def test_cosine_top_k_excludes_self():
    x = np.random.default_rng(3).normal(size=(20, 4))
    top = cosine_top_k(x, x, 3, chunk_size=6, exclude_self=True)
    assert not (top == np.arange(20)[:, None]).any()


def test_retrieval_metrics_match_torchmetrics():
    rng = np.random.default_rng(4)
    n_q, n_db, k = 40, 60, 5
    q_labels, db_labels = rng.integers(0, 4, n_q), rng.integers(0, 4, n_db)
    queries, database = rng.normal(size=(n_q, 6)), rng.normal(size=(n_db, 6))
    ranked = cosine_top_k(queries, database, n_db)
    relevant = db_labels[ranked] == q_labels[:, None]

    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    dn = database / np.linalg.norm(database, axis=1, keepdims=True)
    preds = torch.tensor((qn @ dn.T).ravel())
    target = torch.tensor((q_labels[:, None] == db_labels[None, :]).ravel())
    indexes = torch.arange(n_q).repeat_interleave(n_db)
    for top_k in (1, 3, k):
        hit = RetrievalHitRate(top_k=top_k)(preds, target, indexes=indexes).item()
        mean_ap = RetrievalMAP(top_k=top_k)(preds, target, indexes=indexes).item()
        assert hit_at_k(relevant, top_k).mean() == pytest.approx(hit, abs=1e-6)
        assert average_precision_at_k(relevant, top_k).mean() == pytest.approx(mean_ap, abs=1e-6)


def test_majority_vote_breaks_ties_by_rank():
    neighbours = np.array([[2, 1, 1, 2, 0], [0, 0, 3, 3, 3], [4, 5, 6, 7, 8]])
    query = np.array([2, 3, 4])
    # row 0: 1 and 2 tie at two votes each, 2 is ranked first -> hit; row 1: 3 wins; row 2: 4 is first
    np.testing.assert_array_equal(majority_vote_at_k(neighbours, query, 4), [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(majority_vote_at_k(neighbours, query, 5), [1.0, 1.0, 1.0])


def test_bootstrap_interval_covers_estimate_and_narrows():
    rng = np.random.default_rng(5)
    small, large = rng.random(50) < 0.7, rng.random(5000) < 0.7
    low_s, high_s = bootstrap_mean_ci(small.astype(float))
    low_l, high_l = bootstrap_mean_ci(large.astype(float))
    assert low_s <= small.mean() <= high_s and low_l <= large.mean() <= high_l
    assert high_l - low_l < (high_s - low_s) / 3
    # same seed, same interval
    statistic = lambda w: w @ small / len(small)  # noqa: E731
    assert bootstrap_ci(statistic, 50) == bootstrap_ci(statistic, 50)


def test_weighted_metrics_equal_metrics_on_the_resampled_items(predictions):
    """A bootstrap weight row (multiplicities) must give what indexing the resample gives."""
    y, pred, proba = predictions
    weights = next(resample_weights(len(y), n_resamples=3, seed=7))
    rng = np.random.default_rng(7)  # the same draws resample_weights made
    draws = rng.integers(0, len(y), (3, len(y)))
    cm = confusion_matrices(y, pred, 5, weights)
    aurocs = macro_auroc(y, proba, weights)
    for row, idx in enumerate(draws):
        np.testing.assert_array_equal(np.bincount(idx, minlength=len(y)), weights[row])
        assert balanced_accuracy_from_confusion(cm)[row] == pytest.approx(balanced_accuracy_score(y[idx], pred[idx]))
        assert macro_f1_from_confusion(cm)[row] == pytest.approx(f1_score(y[idx], pred[idx], average="macro"))
        assert aurocs[row] == pytest.approx(roc_auc_score(y[idx], proba[idx], multi_class="ovr"))
