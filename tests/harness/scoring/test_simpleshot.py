"""SimpleShot (harness/scoring/simpleshot.py) against a direct numpy implementation of its
definition (centre on the support mean, L2-normalise, nearest class centroid), draw by draw."""

import numpy as np
import pytest

from harness.scoring.simpleshot import draw_supports, majority_vote, simpleshot_predictions


def direct(train, labels, test, support):
    s, y = train[support], labels[support]
    m = s.mean(axis=0)
    s = (s - m) / np.linalg.norm(s - m, axis=1, keepdims=True)
    q = (test - m) / np.linalg.norm(test - m, axis=1, keepdims=True)
    classes = np.unique(labels)
    centroids = np.stack([s[y == c].mean(axis=0) for c in classes])
    distances = np.linalg.norm(q[:, None, :] - centroids[None], axis=2)
    return classes[distances.argmin(axis=1)]


@pytest.mark.parametrize("shots", [1, 2, 5])
def test_predictions_equal_the_definition_draw_by_draw(shots):
    rng = np.random.default_rng(shots)
    centres = rng.normal(size=(4, 24)) * 1.5
    labels = np.repeat(np.arange(4), 12)
    train = centres[labels] + rng.normal(size=(48, 24)) + 5.0  # off-centre: the centring matters
    test_labels = np.repeat(np.arange(4), 7)
    test = centres[test_labels] + rng.normal(size=(28, 24)) + 5.0
    supports = draw_supports(labels, shots, draws=120, seed=0)
    ours = simpleshot_predictions(train, labels, test, supports)
    assert ours.shape == (120, 28)
    for draw, support in enumerate(supports):
        np.testing.assert_array_equal(ours[draw], direct(train, labels, test, support))


def test_supports_are_balanced_distinct_and_reproducible():
    labels = np.array([0] * 5 + [1] * 9 + [2] * 4)
    supports = draw_supports(labels, 3, draws=200, seed=0)
    assert supports.shape == (200, 9)
    for support in supports:
        assert np.bincount(labels[support]).tolist() == [3, 3, 3] and len(set(support)) == 9
    np.testing.assert_array_equal(supports, draw_supports(labels, 3, draws=200, seed=0))
    assert not np.array_equal(supports, draw_supports(labels, 3, draws=200, seed=1))
    assert len({tuple(s) for s in supports}) > 150  # the draws vary


def test_majority_vote_takes_the_most_predicted_label_per_image():
    predictions = np.array([[0, 1, 2, 2], [0, 2, 2, 0], [1, 2, 0, 1]])  # draws x images
    assert majority_vote(predictions).tolist() == [0, 2, 2, 0]  # image 4: 2, 0, 1 tie -> the smallest label
