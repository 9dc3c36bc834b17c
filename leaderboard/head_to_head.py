"""Head to head: is model A better than model B, task by task?

For each task both scored on the same data (the same dataset fingerprint) with bootstrap
replicates of the same resamples (results keep them: the replicates are paired by resample), the
difference A - B (in the task's better direction) is taken per resample; its 95% percentile
interval decides: win when the whole interval is above 0, loss when below, tie when it holds 0.
Tasks without paired replicates are listed as "not paired" with the point difference, and count
neither way. A summary row counts wins, ties and losses per pair.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from harness.leaderboard.aggregate import Leaderboard

MAX_MODELS = 5
LEVEL = 0.95


def paired_difference(board: Leaderboard, a: str, b: str, task: str) -> tuple[float, tuple[float, float] | None] | None:
    """(point difference, its 95% interval or None when not paired) of a - b on `task`, signed so
    that positive is better; None when either has no score."""
    first, second = board.cells[(a, task)], board.cells[(b, task)]
    if first.status != "ok" or second.status != "ok" or first.value is None or second.value is None:
        return None
    sign = 1.0 if board.higher_is_better(task) else -1.0
    point = sign * (first.value - second.value)
    paired = (first.replicates is not None and second.replicates is not None
              and len(first.replicates) == len(second.replicates) > 0
              and first.fingerprint is not None and first.fingerprint == second.fingerprint)
    if not paired:
        return point, None
    difference = sign * (np.asarray(first.replicates, float) - np.asarray(second.replicates, float))
    difference = difference[np.isfinite(difference)]
    if len(difference) == 0:
        return point, None
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(difference, [tail, 100 - tail])
    return point, (float(low), float(high))


def verdict(interval: tuple[float, float] | None) -> str:
    if interval is None:
        return "not paired"
    low, high = interval
    return "win" if low > 0 else "loss" if high < 0 else "tie"


def head_to_head(board: Leaderboard, models: list[str]) -> list[dict]:
    """One row per task (and a summary row): for each pair 'A vs B' the verdict from A's side and
    the difference with its interval. 2 to MAX_MODELS models."""
    models = [m for m in dict.fromkeys(models) if m in board.models]
    if not 2 <= len(models) <= MAX_MODELS:
        raise ValueError(f"head to head compares 2 to {MAX_MODELS} models (got {len(models)})")
    pairs = list(combinations(models, 2))
    rows, tally = [], {pair: {"win": 0, "tie": 0, "loss": 0} for pair in pairs}
    for task in board.tasks:
        row = {"task": task}
        for a, b in pairs:
            found = paired_difference(board, a, b, task)
            label = f"{board.model_info.get(a, {}).get('name', a)} vs {board.model_info.get(b, {}).get('name', b)}"
            if found is None:
                row[label] = None
                continue
            point, interval = found
            outcome = verdict(interval)
            if outcome in tally[(a, b)]:
                tally[(a, b)][outcome] += 1
            shown = f"{point:+.3f}" + (f" [{interval[0]:+.3f}, {interval[1]:+.3f}]" if interval else "")
            row[label] = f"{outcome} {shown}"
        if any(v is not None for k, v in row.items() if k != "task"):
            rows.append(row)
    summary = {"task": "wins / ties / losses"}
    for a, b in pairs:
        label = f"{board.model_info.get(a, {}).get('name', a)} vs {board.model_info.get(b, {}).get('name', b)}"
        counts = tally[(a, b)]
        summary[label] = f"{counts['win']} / {counts['tie']} / {counts['loss']}"
    return rows + [summary]
