"""Percentile bootstrap confidence intervals over test items.

A resample is represented by its multiplicities: a row w of length n where w[i] counts how often
item i was drawn. Metrics that accept such weight rows evaluate all resamples at once.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

N_RESAMPLES = 1000
CHUNK = 100  # resamples per block: memory stays chunk x n


def resample_weights(n_items: int, n_resamples: int = N_RESAMPLES, seed: int = 0) -> Iterator[np.ndarray]:
    """Blocks of (b, n_items) multiplicity rows, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    for start in range(0, n_resamples, CHUNK):
        b = min(CHUNK, n_resamples - start)
        draws = rng.integers(0, n_items, (b, n_items))
        offsets = np.arange(b)[:, None] * n_items
        yield np.bincount((draws + offsets).ravel(), minlength=b * n_items).reshape(b, n_items).astype(np.float64)


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return (float("nan"), float("nan"))
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return (float(low), float(high))


def bootstrap_ci(
    statistic: Callable[[np.ndarray], np.ndarray],
    n_items: int,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Interval of statistic(weights) -> (b,) values over all resamples.

    For a multi-seed probe the statistic averages over seeds on the same weights, so the
    interval is the test-set sampling uncertainty of the reported mean.
    """
    values = np.concatenate([statistic(w) for w in resample_weights(n_items, n_resamples, seed)])
    return percentile_interval(values, level)


def bootstrap_mean_ci(per_item: np.ndarray, **kwargs) -> tuple[float, float]:
    """Interval for a metric that is the mean of per-item values (e.g. acc@k per query)."""
    per_item = np.asarray(per_item, dtype=np.float64)
    return bootstrap_ci(lambda w: w @ per_item / len(per_item), len(per_item), **kwargs)
