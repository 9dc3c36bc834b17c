"""Few-shot classification with SimpleShot (Wang et al., 2019; its "CL2N" features) on frozen
embeddings: draw k training images of every class (the support set), centre the support and the
test embeddings on the support mean, L2-normalise them, and give each test image the class of the
nearest (Euclidean) centroid of the normalised support. Repeated over many balanced draws of the
support (1,000 per k, as THUNDER), so the score is a distribution over support sets: its mean and
its 2.5-97.5 percentiles are reported per k, a curve over k = 1, 2, 4, 8, 16.

THUNDER's variant differs in two ways this project does not copy: it averages the centred support
before normalising (cosine to normalised class means) and scores one majority vote of the draws'
predictions per test image. The mean over draws is the expected score of one random support set,
as UNI and NanoPath report few-shot results; the vote's score is kept in the details.
"""

from __future__ import annotations

import numpy as np

SHOTS = (1, 2, 4, 8, 16)
DRAWS = 1000
CHUNK = 50  # draws scored at once: memory stays chunk x (support x dims + test images x classes)


def draw_supports(labels: np.ndarray, shots: int, draws: int, seed: int) -> np.ndarray:
    """(draws, classes * shots) training indices: `shots` of each class, without replacement
    within a draw, class by class in label order. Deterministic for a seed."""
    rng = np.random.default_rng([seed, shots])
    by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    return np.stack([np.concatenate([rng.choice(members, shots, replace=False) for members in by_class])
                     for _ in range(draws)])


def simpleshot_predictions(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray,
                           supports: np.ndarray) -> np.ndarray:
    """(draws, test images) predicted labels, one row per support draw.

    A test image t, centred on a draw's support mean m and normalised, is q = (t - m) / |t - m|;
    the nearest centroid c (Euclidean) maximises 2 q.c - |c|^2, and q.c = (t.c - m.c) / |t - m|.
    So only products with the test matrix are formed, never a centred copy of it per draw."""
    classes = np.unique(train_labels)
    train, test = np.asarray(train, dtype=np.float64), np.asarray(test, dtype=np.float64)
    test_norms = (test ** 2).sum(axis=1)  # |t|^2
    predictions = np.empty((len(supports), len(test)), dtype=np.int64)
    for start in range(0, len(supports), CHUNK):
        block = supports[start:start + CHUNK]  # (b, s)
        support = train[block]  # (b, s, d)
        centre = support.mean(axis=1)  # (b, d)
        support = _unit(support - centre[:, None])
        member_of = train_labels[block]  # (b, s)
        centroids = np.stack([np.stack([support[i][member_of[i] == c].mean(axis=0) for c in classes])
                              for i in range(len(block))])  # (b, C, d)
        distance = np.sqrt(np.maximum(test_norms[None] - 2 * centre @ test.T + (centre ** 2).sum(1)[:, None], 1e-24))
        dots = (np.einsum("nd,bcd->bnc", test, centroids) - np.einsum("bd,bcd->bc", centre, centroids)[:, None])
        scores = 2 * dots / distance[..., None] - (centroids ** 2).sum(-1)[:, None, :]
        predictions[start:start + len(block)] = classes[scores.argmax(-1)]
    return predictions


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def majority_vote(predictions: np.ndarray) -> np.ndarray:
    """Per test image, the label most draws predicted (ties: the smallest label, as np.bincount's argmax)."""
    return np.array([np.bincount(column).argmax() for column in predictions.T])
