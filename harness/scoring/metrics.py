"""Classification and retrieval metrics on numpy arrays.

Written here (not called from sklearn) because the bootstrap calls them ~1000 times per task;
tests/harness/test_metrics.py checks each against sklearn / torchmetrics on the same inputs.
"""

from __future__ import annotations

import numpy as np


def _weights(n: int, weights: np.ndarray | None) -> np.ndarray:
    """(B, n) item weights: one row of ones, or B bootstrap multiplicity rows."""
    return np.ones((1, n)) if weights is None else np.atleast_2d(weights).astype(np.float64)


def confusion_matrices(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int,
                       weights: np.ndarray | None = None) -> np.ndarray:
    """(B, C, C) weighted confusion counts [true, predicted], one matrix per weight row."""
    cells = np.asarray(y_true) * n_classes + np.asarray(y_pred)
    onehot = np.zeros((len(cells), n_classes * n_classes))
    onehot[np.arange(len(cells)), cells] = 1.0
    return (_weights(len(cells), weights) @ onehot).reshape(-1, n_classes, n_classes)


def balanced_accuracy_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Mean recall over the classes present in y_true (sklearn's definition), per matrix."""
    support = cm.sum(axis=2)
    correct = np.diagonal(cm, axis1=1, axis2=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, correct / support, np.nan)
    return np.nanmean(recall, axis=1)


def macro_f1_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Mean F1 over the labels in y_true or y_pred (sklearn's default labels), per matrix."""
    true_pos = np.diagonal(cm, axis1=1, axis2=2)
    denominator = cm.sum(axis=1) + cm.sum(axis=2)  # predicted + actual
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(denominator > 0, 2.0 * true_pos / denominator, np.nan)
    return np.nanmean(f1, axis=1)


def _n_classes(*label_arrays: np.ndarray) -> int:
    return int(max(int(np.max(a)) for a in label_arrays if len(a))) + 1


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(balanced_accuracy_from_confusion(confusion_matrices(y_true, y_pred, _n_classes(y_true, y_pred)))[0])


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(macro_f1_from_confusion(confusion_matrices(y_true, y_pred, _n_classes(y_true, y_pred)))[0])


def macro_auroc(y_true: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None):
    """One-vs-rest AUROC averaged over classes that have both positives and negatives.

    scores: (n, n_classes) class probabilities. Ties count one half (Mann-Whitney U). With
    `weights` (B, n) it returns B values, one per weighted (e.g. bootstrap) copy of the data.
    """
    y_true = np.asarray(y_true)
    w = _weights(len(y_true), weights)
    per_class = []
    for label in range(scores.shape[1]):
        order = np.argsort(scores[:, label], kind="stable")
        ranked = scores[order, label]
        new_value = np.r_[True, ranked[1:] != ranked[:-1]]
        group = np.cumsum(new_value) - 1  # tie group of each sorted item
        positive = y_true[order] == label
        w_pos, w_neg = w[:, order] * positive, w[:, order] * ~positive
        neg_per_group = np.add.reduceat(w_neg, np.flatnonzero(new_value), axis=1)
        neg_below = np.cumsum(neg_per_group, axis=1) - neg_per_group
        wins = (w_pos * (neg_below[:, group] + 0.5 * neg_per_group[:, group])).sum(axis=1)
        pairs = w_pos.sum(axis=1) * w_neg.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_class.append(np.where(pairs > 0, wins / pairs, np.nan))
    stacked = np.stack(per_class, axis=1)
    valid = np.isfinite(stacked)
    count = valid.sum(axis=1)
    values = np.where(count > 0, np.where(valid, stacked, 0.0).sum(axis=1) / np.maximum(count, 1), np.nan)
    return float(values[0]) if weights is None else values


# --- retrieval -------------------------------------------------------------------------


def cosine_top_k(
    queries: np.ndarray,
    database: np.ndarray,
    k: int,
    chunk_size: int = 2048,
    exclude_self: bool = False,
) -> np.ndarray:
    """Indices (n_queries, k) of the k most cosine-similar database rows, best first.

    Computed in query chunks, so memory is chunk_size x n_database, never n x n.
    With exclude_self, query i and database row i are the same item and i is never returned.
    """
    q = _l2_normalise(queries)
    d = _l2_normalise(database)
    k = min(k, len(d) - (1 if exclude_self else 0))
    out = np.empty((len(q), k), dtype=np.int64)
    for start in range(0, len(q), chunk_size):
        sims = q[start : start + chunk_size] @ d.T
        if exclude_self:
            rows = np.arange(sims.shape[0])
            sims[rows, rows + start] = -np.inf
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1, kind="stable")
        out[start : start + chunk_size] = np.take_along_axis(part, order, axis=1)
    return out


def cosine_knn_predict(train: np.ndarray, labels: np.ndarray, test: np.ndarray, k: int) -> np.ndarray:
    """The majority label of each test row's k cosine-nearest train rows.

    Computed step for step as scikit-learn's KNeighborsClassifier(metric="cosine",
    algorithm="brute", weights="uniform") does (the same normalisation, distance, partial sort
    and vote, so the same predictions, ties included: a tied vote goes to the smallest label),
    without importing scikit-learn, which costs a single-task run ~1 s. Tested against it.
    """
    classes, encoded = np.unique(labels, return_inverse=True)
    k = min(k, len(encoded))
    distance = 1 - _sklearn_unit_rows(test) @ _sklearn_unit_rows(train).T
    np.clip(distance, 0.0, 2.0, out=distance)
    rows = np.arange(len(distance))[:, None]
    nearest = np.argpartition(distance, k - 1, axis=1)[:, :k]
    nearest = nearest[rows, np.argsort(distance[rows, nearest])]
    votes = np.zeros((len(distance), len(classes)), np.int64)
    np.add.at(votes, (np.broadcast_to(rows, nearest.shape), encoded[nearest]), 1)
    return classes[votes.argmax(axis=1)]


def _sklearn_unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm as sklearn.preprocessing.normalize does (near-zero rows kept)."""
    x = np.asarray(x)
    x = x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    norms[norms < 10 * np.finfo(norms.dtype).eps] = 1.0
    return x / norms[:, None]


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def hit_at_k(relevant: np.ndarray, k: int) -> np.ndarray:
    """Per query: 1 if any of the top k is relevant (acc@k). relevant: (n, K) bool, ranked."""
    return relevant[:, :k].any(axis=1).astype(np.float64)


def average_precision_at_k(relevant: np.ndarray, k: int) -> np.ndarray:
    """Per query: mean of precision@i over the relevant ranks i <= k (0 when none is relevant).

    This is torchmetrics' RetrievalMAP(top_k=k) normalisation (by the relevant items retrieved).
    """
    top = relevant[:, :k].astype(np.float64)
    precision_at_i = np.cumsum(top, axis=1) / np.arange(1, top.shape[1] + 1)
    n_relevant = top.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (precision_at_i * top).sum(axis=1) / n_relevant
    return np.where(n_relevant > 0, ap, 0.0)


def majority_vote_at_k(neighbour_labels: np.ndarray, query_labels: np.ndarray, k: int) -> np.ndarray:
    """Per query: 1 if the most frequent label among the top k is the query's label.

    A tie between labels is broken by the best-ranked neighbour among the tied labels.
    """
    top = neighbour_labels[:, :k]
    hits = np.empty(len(top), dtype=np.float64)
    for i, row in enumerate(top):
        labels, first_rank, counts = np.unique(row, return_index=True, return_counts=True)
        tied = counts == counts.max()
        winner = labels[tied][np.argmin(first_rank[tied])]
        hits[i] = float(winner == query_labels[i])
    return hits
