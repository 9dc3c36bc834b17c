"""Stain/scanner robustness metrics, as plismbench defines them.

Two slides A and B hold the same n tissue tiles (row i of A and of B is the same tissue).
  cosine:  mean over i of cos(A_i, B_i)
  top-k:   pool the 2n tiles; each tile queries the other 2n - 1 by cosine similarity; a hit
           is its aligned twin among the k nearest. Averaged over all 2n queries (both
           directions).
Slide pairs are grouped by what differs: inter-scanner (same staining), inter-staining (same
scanner), both, and all. Each group reports the median (and IQR) over its pairs; the
leaderboard score is the mean of four medians: cosine (all), top-10 inter-scanner, top-10
inter-staining, top-10 both.

Memory: queries are processed in chunks, so at most chunk x 2n similarities exist at once,
never the 2n x 2n matrix.
"""

from __future__ import annotations

from itertools import combinations
from typing import Iterable, Sequence

import numpy as np

KS = (1, 3, 5, 10)
GROUPS = ("inter_scanner", "inter_staining", "both", "all")


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def pair_metrics(a: np.ndarray, b: np.ndarray, ks: Sequence[int] = KS, chunk_size: int = 1024) -> dict[str, float]:
    """cosine and top_k for one aligned slide pair (a, b: (n, d) embeddings, same tile order)."""
    if a.shape != b.shape:
        raise ValueError(f"aligned slides need the same tiles: shapes {a.shape} and {b.shape}")
    pooled = np.concatenate([_unit(a), _unit(b)])
    n = len(a)
    twins = np.concatenate([np.arange(n, 2 * n), np.arange(n)])
    cosine = float(np.einsum("ij,ij->i", pooled[:n], pooled[n:]).mean())
    hits = {k: 0 for k in ks}
    for start in range(0, 2 * n, chunk_size):
        stop = min(start + chunk_size, 2 * n)
        sims = pooled[start:stop] @ pooled.T
        rows = np.arange(stop - start)
        sims[rows, rows + start] = -np.inf  # a tile never retrieves itself
        twin_similarity = sims[rows, twins[start:stop]]
        rank = (sims > twin_similarity[:, None]).sum(axis=1)  # tiles strictly closer than the twin
        for k in ks:
            hits[k] += int((rank < k).sum())
    return {"cosine": cosine, **{f"top_{k}": hits[k] / (2 * n) for k in ks}}


def pair_groups(domains: Sequence[tuple[str, str]]) -> dict[str, list[tuple[int, int]]]:
    """All slide pairs (by index) grouped by what differs; domains[i] = (staining, scanner)."""
    groups: dict[str, list[tuple[int, int]]] = {g: [] for g in GROUPS}
    for i, j in combinations(range(len(domains)), 2):
        (stain_i, scanner_i), (stain_j, scanner_j) = domains[i], domains[j]
        if stain_i == stain_j and scanner_i != scanner_j:
            groups["inter_scanner"].append((i, j))
        elif scanner_i == scanner_j and stain_i != stain_j:
            groups["inter_staining"].append((i, j))
        elif stain_i != stain_j and scanner_i != scanner_j:
            groups["both"].append((i, j))
        groups["all"].append((i, j))
    return groups


def summarise_groups(per_pair: dict[tuple[int, int], dict[str, float]],
                     groups: dict[str, Iterable[tuple[int, int]]]) -> dict[str, dict[str, dict[str, float]]]:
    """group -> metric -> {median, q1, q3, n_pairs}."""
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for group, pairs in groups.items():
        pairs = list(pairs)
        if not pairs:
            continue
        summary[group] = {}
        for metric in per_pair[pairs[0]]:
            values = np.array([per_pair[p][metric] for p in pairs])
            q1, median, q3 = np.percentile(values, [25, 50, 75])
            summary[group][metric] = {"median": float(median), "q1": float(q1), "q3": float(q3),
                                      "n_pairs": len(pairs)}
    return summary


def leaderboard_score(summary: dict[str, dict[str, dict[str, float]]]) -> float:
    """Mean of the medians of cosine (all) and top-10 inter-scanner, inter-staining and both."""
    parts = [summary["all"]["cosine"]["median"], summary["inter_scanner"]["top_10"]["median"],
             summary["inter_staining"]["top_10"]["median"], summary["both"]["top_10"]["median"]]
    return float(np.mean(parts))
