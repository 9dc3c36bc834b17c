"""Calibration errors (harness/scoring/calibration.py): ECE and MCE against torchmetrics on the same
arrays; SCE, ACE and TACE against a plain loop over THUNDER's definitions (M = 5 bins); the
bootstrap weight rows equal the metric on the resampled arrays; a calibrated probe scores 0."""

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassCalibrationError

from harness.scoring.calibration import CALIBRATION_METRICS, N_BINS


def probe_like(n: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Softmax outputs of a probe that is right more often when it is confident (no confidence sits
    on a bin edge, where libraries differ in which bin takes it)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, n_classes)) * rng.uniform(0.5, 4.0, size=(n, 1))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    right = rng.uniform(size=n) < probabilities.max(axis=1) ** 0.7
    labels = np.where(right, probabilities.argmax(axis=1), rng.integers(0, n_classes, n))
    return probabilities, labels


def loop_gaps(probabilities, labels, n_bins=N_BINS):
    confidence, hits = probabilities.max(1), (probabilities.argmax(1) == labels).astype(float)
    edges = np.linspace(0, 1, n_bins + 1)
    gaps, shares = [], []
    for lower, upper in zip(edges[:-1], edges[1:]):
        inside = (confidence > lower) & (confidence <= upper)
        if inside.any():
            gaps.append(abs(hits[inside].mean() - confidence[inside].mean()))
            shares.append(inside.mean())
    return np.array(gaps), np.array(shares)


def loop_adaptive(probabilities, labels, threshold=None, n_bins=N_BINS):
    confidence, hits = probabilities.max(1), (probabilities.argmax(1) == labels).astype(float)
    order = np.argsort(confidence, kind="stable")
    size = len(order) // n_bins
    gaps = []
    for b in range(n_bins):
        members = order[b * size:(b + 1) * size] if b < n_bins - 1 else order[b * size:]
        if len(members) and (threshold is None or confidence[members].mean() > threshold):
            gaps.append(abs(hits[members].mean() - confidence[members].mean()))
    if threshold is None:
        return sum(gaps) / n_bins
    return sum(gaps) / len(gaps) if gaps else 0.0


@pytest.mark.parametrize("n, n_classes, seed", [(500, 4, 0), (73, 2, 1), (1200, 9, 2)])
def test_ece_and_mce_equal_torchmetrics(n, n_classes, seed):
    probabilities, labels = probe_like(n, n_classes, seed)
    for norm, name in (("l1", "ece"), ("max", "mce")):
        metric = MulticlassCalibrationError(num_classes=n_classes, n_bins=N_BINS, norm=norm)
        expected = float(metric(torch.from_numpy(probabilities).float(), torch.from_numpy(labels)))
        ours = CALIBRATION_METRICS[name](probabilities.astype(np.float32), labels)
        assert ours.shape == (1,) and ours[0] == pytest.approx(expected, abs=1e-6), name


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sce_ace_tace_follow_thunders_definitions(seed):
    probabilities, labels = probe_like(311, 5, seed)
    gaps, shares = loop_gaps(probabilities, labels)
    assert CALIBRATION_METRICS["ece"](probabilities, labels)[0] == pytest.approx((gaps * shares).sum())
    assert CALIBRATION_METRICS["sce"](probabilities, labels)[0] == pytest.approx(gaps.sum() / N_BINS)
    assert CALIBRATION_METRICS["ace"](probabilities, labels)[0] == pytest.approx(loop_adaptive(probabilities, labels))
    assert CALIBRATION_METRICS["tace"](probabilities, labels)[0] == pytest.approx(
        loop_adaptive(probabilities, labels, threshold=0.01))


def test_bootstrap_rows_equal_the_metric_on_the_resampled_items():
    probabilities, labels = probe_like(120, 3, 4)
    rng = np.random.default_rng(0)
    draws = [rng.integers(0, 120, 120) for _ in range(4)]
    weights = np.stack([np.bincount(d, minlength=120) for d in draws]).astype(float)
    for name, metric in CALIBRATION_METRICS.items():
        rows = metric(probabilities, labels, weights)
        # the adaptive bins cut the resample in confidence order, so compare on the sorted resample
        direct = [metric(probabilities[np.sort(d)], labels[np.sort(d)])[0] for d in draws]
        np.testing.assert_allclose(rows, direct, atol=1e-12, err_msg=name)


def test_a_confident_right_probe_scores_its_small_gap_and_a_confident_wrong_one_its_large_gap():
    labels = np.repeat([0, 1], 50)
    right = np.eye(2)[labels] * 0.98 + 0.01  # confidence 0.99, always right: gap 0.01 in one bin
    wrong = np.eye(2)[1 - labels] * 0.98 + 0.01  # confidence 0.99, always wrong: gap 0.99
    for gap, probabilities in ((0.01, right), (0.99, wrong)):
        expected = {"ece": gap, "mce": gap, "sce": gap / N_BINS, "ace": gap, "tace": gap}
        for name, metric in CALIBRATION_METRICS.items():
            assert metric(probabilities, labels)[0] == pytest.approx(expected[name]), name
