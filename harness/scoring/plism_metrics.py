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

All pairs of many slides (`all_pair_metrics`, what the family runs): a query's rank splits into
the tiles of its own slide that are closer than its twin and the tiles of the other slide that
are. The first part needs the slide's within-slide similarities, the same in every pair the slide
takes part in (90 of them in PLISM): they are computed once per slide. Per pair only the cross
block A B^T is computed, once, and read row-wise (A's queries) and column-wise (B's). That is a
quarter of the floating-point work of pooling the 2n tiles per pair.

On a CUDA device (`device="cuda"`, what the family picks when one is visible) the same counts are
made with torch on the device: the slides are copied there once, and only the per-pair counts
come back. float32 throughout (TF32 is not enabled), so a similarity differs from the CPU's only by
the summation order of one dot product; a count can differ only where a tile's similarity ties
its twin's to the last bit.
"""

from __future__ import annotations

from itertools import combinations
from typing import Callable, Iterable, NamedTuple, Sequence

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


def metrics_device() -> str | None:
    """Where all_pair_metrics runs in a scored task: a visible CUDA device, else numpy on the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else None


def all_pair_metrics(slides: Sequence[np.ndarray], pairs: Iterable[tuple[int, int]], ks: Sequence[int] = KS,
                     chunk_size: int = 1024, device: str | None = None) -> dict[tuple[int, int], dict[str, float]]:
    """pair (i, j) -> pair_metrics(slides[i], slides[j]) for every pair, each slide's within-slide
    similarities computed once. Slides are visited in order; when slide s is visited, the cross
    blocks of its pairs with later slides are computed (its queries' cross counts now, the partner's
    kept for when the partner is visited), then all of s's thresholds are counted against its
    within-slide similarities in one pass. `device`: None for numpy, or a torch device ("cuda",
    "cpu") for the same counts made with torch there."""
    if device is None:
        units, counting = [_unit(s) for s in slides], _NUMPY
    else:
        units, counting = _torch_units(slides, device), _torch_counting()
    if len({u.shape for u in units}) > 1:
        raise ValueError(f"aligned slides need the same tiles: shapes {sorted({u.shape for u in units})}")
    n = len(units[0])
    pairs = sorted({(min(i, j), max(i, j)) for i, j in pairs})
    later: dict[int, list[int]] = {s: [] for s in range(len(units))}
    for i, j in pairs:
        later[i].append(j)
    waiting: dict[int, list[tuple[tuple[int, int], np.ndarray, np.ndarray]]] = {s: [] for s in range(len(units))}
    hits = {pair: np.zeros(len(ks), np.int64) for pair in pairs}
    cosine: dict[tuple[int, int], float] = {}
    for s, anchor in enumerate(units):
        if not later[s] and not waiting[s]:
            continue
        queries = list(waiting.pop(s))  # (pair, twin similarity per tile, cross count per tile)
        for j in later[s]:
            twin = counting.einsum("ij,ij->i", anchor, units[j])
            rows, columns = counting.cross(anchor, units[j], twin, chunk_size)
            cosine[(s, j)] = float(twin.mean())
            queries.append(((s, j), twin, rows))
            waiting[j].append(((s, j), twin, columns))
        within = counting.within(anchor, counting.stack([q[1] for q in queries]), chunk_size)
        for (pair, _, cross), inside in zip(queries, within):
            rank = cross + inside  # tiles strictly closer than the twin, from both slides
            hits[pair] += np.array([int((rank < k).sum()) for k in ks])
    return {pair: {"cosine": cosine[pair], **{f"top_{k}": int(h) / (2 * n) for k, h in zip(ks, hits[pair])}}
            for pair in pairs}


class _Counting(NamedTuple):
    cross: Callable
    within: Callable
    stack: Callable
    einsum: Callable


def _cross_counts(a: np.ndarray, b: np.ndarray, twin: np.ndarray, chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per tile of a, the tiles of b closer to it than its twin; per tile of b, the tiles of a closer
    to it than its twin (the twin itself is not counted). One pass over the cross block a b^T."""
    rows = np.zeros(len(a), np.int64)
    columns = np.zeros(len(b), np.int64)
    for start in range(0, len(a), chunk_size):
        stop = min(start + chunk_size, len(a))
        block = a[start:stop] @ b.T
        local = np.arange(stop - start)
        block[local, local + start] = -np.inf  # the twin: counted by neither side
        rows[start:stop] = (block > twin[start:stop, None]).sum(axis=1)
        columns += (block > twin[None, :]).sum(axis=0)
    return rows, columns


def _within_counts(a: np.ndarray, thresholds: np.ndarray, chunk_size: int) -> np.ndarray:
    """(q, n): for each row of thresholds and each tile i of a, the other tiles of a whose
    similarity to tile i exceeds thresholds[., i]. The within-slide block is computed once, in row
    chunks, and every threshold row is counted against each chunk."""
    counts = np.zeros(thresholds.shape, np.int64)
    rows_per_chunk = max(1, chunk_size // max(1, len(thresholds)))  # keeps (q, chunk, n) comparisons bounded
    for start in range(0, len(a), rows_per_chunk):
        stop = min(start + rows_per_chunk, len(a))
        block = a[start:stop] @ a.T
        local = np.arange(stop - start)
        block[local, local + start] = -np.inf  # a tile never retrieves itself
        counts[:, start:stop] = (block[None] > thresholds[:, start:stop, None]).sum(axis=2)
    return counts


_NUMPY = _Counting(_cross_counts, _within_counts, np.stack, np.einsum)


def _torch_units(slides: Sequence[np.ndarray], device: str) -> list:
    import torch

    units = [torch.as_tensor(np.asarray(s, dtype=np.float32)).to(device) for s in slides]
    return [u / u.norm(dim=1, keepdim=True).clamp_min(1e-12) for u in units]


def _torch_counting() -> _Counting:
    """_cross_counts and _within_counts in torch, on the device of their arguments."""
    import torch

    def cross(a, b, twin, chunk_size):
        rows = torch.zeros(len(a), dtype=torch.int64, device=a.device)
        columns = torch.zeros(len(b), dtype=torch.int64, device=a.device)
        for start in range(0, len(a), chunk_size):
            stop = min(start + chunk_size, len(a))
            block = a[start:stop] @ b.T
            local = torch.arange(stop - start, device=a.device)
            block[local, local + start] = -torch.inf
            rows[start:stop] = (block > twin[start:stop, None]).sum(1)
            columns += (block > twin[None, :]).sum(0)
        return rows, columns

    def within(a, thresholds, chunk_size):
        counts = torch.zeros(thresholds.shape, dtype=torch.int64, device=a.device)
        rows_per_chunk = max(1, chunk_size // max(1, len(thresholds)))
        for start in range(0, len(a), rows_per_chunk):
            stop = min(start + rows_per_chunk, len(a))
            block = a[start:stop] @ a.T
            local = torch.arange(stop - start, device=a.device)
            block[local, local + start] = -torch.inf
            counts[:, start:stop] = (block[None] > thresholds[:, start:stop, None]).sum(2)
        return counts

    return _Counting(cross, within, torch.stack, torch.einsum)


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
