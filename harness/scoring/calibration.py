"""Calibration of a probe's probabilities: does a prediction made with confidence p come true a
fraction p of the time? THUNDER's five measures (Marza et al., NeurIPS 2025; its
calibration_metrics.py), with its M = 5 bins, on the top-class confidence:

  ECE   expected calibration error: equal-width confidence bins (lower, upper], the mean over bins
        of |accuracy - mean confidence| weighted by the bin's share of the items
  MCE   maximum calibration error: the largest such gap over the non-empty bins
  SCE   static calibration error, as THUNDER computes it: the same gaps, each weighted 1/M
        (empty bins count zero)
  ACE   adaptive calibration error: the items sorted by confidence and cut into M bins of
        floor(n / M) items (the last takes the rest); the mean gap over the M bins
  TACE  thresholded ACE: ACE over the bins whose mean confidence exceeds 0.01

Every function takes multiplicity weights, one row per bootstrap resample ((b, n), integers), and
returns one value per row, so that the harness's bootstrap gives each an interval. A weight row
of ones is the test set itself. A calibration error is biased upwards on a resample (duplicated
items make bins uneven), so on a well-calibrated probe its percentile interval can lie above the
estimate itself: read it as the spread, not as a bracket around the value. ECE and MCE equal torchmetrics' MulticlassCalibrationError (norm
"l1" and "max") where no confidence sits exactly on a bin edge (tested); torchmetrics does not
compute the other three.
"""

from __future__ import annotations

import numpy as np

N_BINS = 5  # THUNDER's M
TACE_THRESHOLD = 0.01


def _confidence_and_hits(probabilities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probabilities = np.asarray(probabilities, dtype=np.float64)
    return probabilities.max(axis=1), (probabilities.argmax(axis=1) == np.asarray(labels)).astype(np.float64)


def confidence_bins(confidence: np.ndarray, n_bins: int = N_BINS) -> tuple[np.ndarray, np.ndarray]:
    """(edges, bin of each confidence): equal-width bins (lower, upper], as THUNDER cuts them; a
    confidence of 0 is given bin -1 (in no bin)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    return edges, np.where(confidence > 0.0, bins, -1)


def _fixed_bin_gaps(probabilities, labels, weights, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(b, M) |accuracy - confidence| per equal-width bin and (b, M) weighted counts."""
    confidence, hits = _confidence_and_hits(probabilities, labels)
    _, bins = confidence_bins(confidence, n_bins)
    members = (bins[:, None] == np.arange(n_bins)[None]).astype(np.float64)
    counts = weights @ members
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = (weights * hits) @ members / counts
        mean_confidence = (weights * confidence) @ members / counts
    gaps = np.where(counts > 0, np.abs(accuracy - mean_confidence), 0.0)
    return gaps, counts


def _rows(weights: np.ndarray | None, n: int) -> np.ndarray:
    return np.ones((1, n)) if weights is None else np.atleast_2d(np.asarray(weights, dtype=np.float64))


def expected_calibration_error(probabilities, labels, weights=None, n_bins: int = N_BINS) -> np.ndarray:
    weights = _rows(weights, len(labels))
    gaps, counts = _fixed_bin_gaps(probabilities, labels, weights, n_bins)
    return (gaps * counts).sum(axis=1) / weights.sum(axis=1)


def maximum_calibration_error(probabilities, labels, weights=None, n_bins: int = N_BINS) -> np.ndarray:
    gaps, _ = _fixed_bin_gaps(probabilities, labels, _rows(weights, len(labels)), n_bins)
    return gaps.max(axis=1)


def static_calibration_error(probabilities, labels, weights=None, n_bins: int = N_BINS) -> np.ndarray:
    gaps, _ = _fixed_bin_gaps(probabilities, labels, _rows(weights, len(labels)), n_bins)
    return gaps.sum(axis=1) / n_bins


def _adaptive(probabilities, labels, weights, n_bins: int, threshold: float | None) -> np.ndarray:
    """ACE (threshold None) or TACE per weight row: the row's items repeated by their weight (a
    bootstrap resample), sorted by confidence (stable), cut into M bins of floor(n / M)."""
    confidence, hits = _confidence_and_hits(probabilities, labels)
    order = np.argsort(confidence, kind="stable")
    values = []
    for row in _rows(weights, len(labels)):
        index = np.repeat(order, row[order].astype(np.int64))
        size = len(index) // n_bins
        total, used = 0.0, 0
        for b in range(n_bins):
            members = index[b * size: (b + 1) * size if b < n_bins - 1 else len(index)]
            if len(members) == 0:
                continue
            mean_confidence = confidence[members].mean()
            if threshold is not None and mean_confidence <= threshold:
                continue
            total += abs(hits[members].mean() - mean_confidence)
            used += 1
        values.append(total / n_bins if threshold is None else (total / used if used else 0.0))
    return np.array(values)


def adaptive_calibration_error(probabilities, labels, weights=None, n_bins: int = N_BINS) -> np.ndarray:
    return _adaptive(probabilities, labels, weights, n_bins, None)


def thresholded_adaptive_calibration_error(probabilities, labels, weights=None, n_bins: int = N_BINS,
                                           threshold: float = TACE_THRESHOLD) -> np.ndarray:
    return _adaptive(probabilities, labels, weights, n_bins, threshold)


CALIBRATION_METRICS = {
    "ece": expected_calibration_error,
    "mce": maximum_calibration_error,
    "sce": static_calibration_error,
    "ace": adaptive_calibration_error,
    "tace": thresholded_adaptive_calibration_error,
}
