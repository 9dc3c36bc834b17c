"""Percentile bootstrap confidence intervals over test items."""

from __future__ import annotations

from typing import Callable

import numpy as np

N_RESAMPLES = 1000


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    n_items: int,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """(low, high) percentile interval of statistic(indices) over resamples of n_items items.

    `statistic` gets an index array (drawn with replacement) and returns one number; for a
    multi-seed probe it should average over seeds on the same indices, so the interval is the
    test-set sampling uncertainty of the reported mean.
    """
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n_items, n_items)) for _ in range(n_resamples)])
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return (float("nan"), float("nan"))
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return (float(low), float(high))


def bootstrap_mean_ci(per_item: np.ndarray, **kwargs) -> tuple[float, float]:
    """Interval for a metric that is the mean of per-item values (e.g. acc@k per query)."""
    return bootstrap_ci(lambda idx: float(per_item[idx].mean()), len(per_item), **kwargs)
