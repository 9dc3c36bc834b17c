"""Classification and retrieval metrics on numpy arrays.

Written here (not called from sklearn) because the bootstrap calls them ~1000 times per task;
tests/harness/test_metrics.py checks each against sklearn / torchmetrics on the same inputs.
"""

from __future__ import annotations

import numpy as np


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean per-class recall over the classes present in y_true (sklearn's definition)."""
    classes, true_index = np.unique(y_true, return_inverse=True)
    correct = np.bincount(true_index, weights=(y_true == y_pred), minlength=len(classes))
    support = np.bincount(true_index, minlength=len(classes))
    return float(np.mean(correct / support))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unweighted mean F1 over the labels in y_true or y_pred (sklearn's default labels)."""
    labels = np.union1d(y_true, y_pred)
    scores = []
    for label in labels:
        true_pos = np.sum((y_true == label) & (y_pred == label))
        predicted = np.sum(y_pred == label)
        actual = np.sum(y_true == label)
        denominator = predicted + actual
        scores.append(0.0 if denominator == 0 else 2.0 * true_pos / denominator)
    return float(np.mean(scores))


def macro_auroc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """One-vs-rest AUROC averaged over classes that have both positives and negatives.

    scores: (n, n_classes) class probabilities or logits. Ties count one half (Mann-Whitney).
    """
    from scipy.stats import rankdata  # slow to import; only needed here

    n_classes = scores.shape[1]
    ranks = rankdata(scores, axis=0)
    aucs = []
    for label in range(n_classes):
        positive = y_true == label
        n_pos = int(positive.sum())
        n_neg = len(y_true) - n_pos
        if n_pos == 0 or n_neg == 0:
            continue
        rank_sum = ranks[positive, label].sum()
        aucs.append((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
    return float(np.mean(aucs)) if aucs else float("nan")


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
