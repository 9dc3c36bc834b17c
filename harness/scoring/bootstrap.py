"""Percentile bootstrap confidence intervals over test items.

A resample is represented by its multiplicities: a row w of length n where w[i] counts how often
item i was drawn. Metrics that accept such weight rows evaluate all resamples at once.

The resamples depend only on (n_items, n_resamples, seed), so two models scored on the same test
items get the same resamples: the replicate values an interval carries are paired across models,
which is what the leaderboard's rank uncertainty needs.
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


class BootstrapInterval(tuple):
    """(low, high), carrying the replicate values it was taken from (`.replicates`)."""

    replicates: np.ndarray

    def __new__(cls, low: float, high: float, replicates: np.ndarray):
        interval = super().__new__(cls, (low, high))
        interval.replicates = np.asarray(replicates, dtype=np.float64)
        return interval


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
) -> BootstrapInterval:
    """Interval of statistic(weights) -> (b,) values over all resamples.

    For a multi-seed probe the statistic averages over seeds on the same weights, so the
    interval is the test-set sampling uncertainty of the reported mean.
    """
    values = np.concatenate([statistic(w) for w in resample_weights(n_items, n_resamples, seed)])
    return BootstrapInterval(*percentile_interval(values, level), replicates=values)


def bootstrap_mean_ci(per_item: np.ndarray, **kwargs) -> BootstrapInterval:
    """Interval for a metric that is the mean of per-item values (e.g. acc@k per query)."""
    per_item = np.asarray(per_item, dtype=np.float64)
    return bootstrap_ci(lambda w: w @ per_item / len(per_item), len(per_item), **kwargs)
