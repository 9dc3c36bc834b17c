"""plismbench's pair metrics by brute force (full similarity matrix, argsort): the reference the fast code is checked against."""

import numpy as np


def brute_force(a, b, ks=(1, 3, 5, 10)):
    pooled = np.concatenate([a, b])
    pooled = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    n = len(a)
    sims = pooled @ pooled.T
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1)
    twins = np.r_[np.arange(n, 2 * n), np.arange(n)]
    cosine = np.mean([pooled[i] @ pooled[i + n] for i in range(n)])
    return {"cosine": cosine, **{f"top_{k}": np.mean([twins[q] in order[q, :k] for q in range(2 * n)]) for k in ks}}
