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
    bootstrap resample), sorted by confidence (stable), cut into M bins of floor(n / M).

    Computed without building the resamples: in confidence order, item i's copies take positions
    [end_i - w_i, end_i) of the repeated sequence (end: the running sum of the weights), so the sum
    of a value over positions [0, P) is its running weighted sum over the items that end by P plus
    the copies of the next item before P, and a bin's sum is that at its upper edge less that at
    its lower one."""
    confidence, hits = _confidence_and_hits(probabilities, labels)
    order = np.argsort(confidence, kind="stable")
    confidence, hits = confidence[order], hits[order]
    rows = np.floor(_rows(weights, len(labels))[:, order])  # whole copies, as np.repeat takes them
    b, n = rows.shape
    ends = np.cumsum(rows, axis=1)
    total = ends[:, -1:]
    size = np.floor(total / n_bins)
    edges = np.concatenate([size * np.arange(n_bins), total], axis=1)  # (b, M + 1) first position of each bin, then the end
    # per row, how many items end by each edge: one sorted search over the rows laid end to end
    span = float(total.max()) + 1.0
    offset = span * np.arange(b)[:, None]
    done = np.searchsorted((ends + offset).ravel(), (edges + offset).ravel(), side="right").reshape(b, -1)
    done -= n * np.arange(b)[:, None]

    row = np.arange(b)[:, None]
    copies_before = edges - np.concatenate([np.zeros((b, 1)), ends], axis=1)[row, done]  # of the item under each edge
    under = np.minimum(done, n - 1)  # that item (at the end: the last, with no copies before the edge)

    def before(values: np.ndarray) -> np.ndarray:
        """(b, M + 1): the sum of `values` over positions [0, edge) of each row's resample."""
        running = np.concatenate([np.zeros((b, 1)), np.cumsum(rows * values, axis=1)], axis=1)
        return running[row, done] + copies_before * values[under]

    counts = np.diff(edges, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.diff(before(confidence), axis=1) / counts
        accuracy = np.diff(before(hits), axis=1) / counts
    used = counts > 0
    if threshold is not None:
        used &= mean_confidence > threshold
    gaps = np.where(used, np.abs(accuracy - mean_confidence), 0.0).sum(axis=1)
    if threshold is None:
        return gaps / n_bins
    n_used = used.sum(axis=1)
    return np.where(n_used > 0, gaps / np.maximum(n_used, 1), 0.0)


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
