"""The Per task and Robustness tabs' tables, read from result files: the metrics a family puts in a
display group (the robustness panel), the tile family's few-shot curves and reliability diagrams.

Result files are untrusted (leaderboard/aggregate.py says how a board treats them): a value outside
its metric's range, or a diagram that is not the lists it should be, is left out, never shown
half-read.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from typing import Any

from harness.results import TaskResult


def group_tables(results: list[tuple[str, TaskResult]], group: str) -> dict[str, list[dict]]:
    """task -> one row per model: the metrics its family puts in display `group` (e.g. the
    robustness panel), None where not reported. Results older than schema 4 declare no groups."""
    tables: dict[str, list[dict]] = defaultdict(list)
    for _, result in sorted(results, key=lambda item: (item[1].task, item[1].model.name)):
        columns = [name for name, info in result.metric_info.items() if info.group == group]
        if not columns or result.status != "ok":
            continue
        row = {"model": result.model.name}
        row.update({c: result.metrics[c].mean if c in result.metrics else None for c in columns})
        tables[result.task].append(row)
    return dict(tables)


FEW_SHOT_METRIC = re.compile(r"^fewshot([0-9]{1,4})_balanced_accuracy$")


def few_shot_rows(results: list[tuple[str, TaskResult]], task: str) -> list[dict]:
    """The few-shot curve of `task`: per model and k (images per class), the mean balanced
    accuracy over support draws and its 2.5-97.5 percentiles, from the metrics the tile family
    writes (fewshot<k>_balanced_accuracy). Values outside [0, 1] are left out; an interval that is
    not inside [0, 1] around its mean (NaN, 1e30 in a hand-edited file) is dropped, the point kept."""
    rows = []
    for _, result in sorted(results, key=lambda item: item[1].model.name):
        if result.task != task or result.status != "ok":
            continue
        for name, metric in result.metrics.items():
            match = FEW_SHOT_METRIC.match(name)
            if match is None or not (math.isfinite(metric.mean) and 0.0 <= metric.mean <= 1.0):
                continue
            low, high = metric.ci95 if metric.ci95 else (None, None)
            if low is None or not (0.0 <= low <= metric.mean <= high <= 1.0):  # NaN fails too: no band
                low = high = None
            rows.append({"model": result.model.name, "shots": int(match.group(1)), "score": metric.mean,
                         "low": low, "high": high})
    return sorted(rows, key=lambda row: (row["model"], row["shots"]))


def reliability_rows(results: list[tuple[str, TaskResult]], task: str) -> list[dict]:
    """A reliability diagram's points for `task`: per model, per non-empty confidence bin, its mean
    confidence, accuracy and items, from the result's details (the tile family writes them). A
    result file is untrusted: a diagram whose bins are not equal-length lists of numbers in [0, 1]
    (items: whole numbers) is left out, never shown half-read."""
    rows = []
    for _, result in sorted(results, key=lambda item: item[1].model.name):
        diagram = result.details.get("reliability") if result.task == task and result.status == "ok" else None
        points = _reliability_points(diagram)
        rows += [{"model": result.model.name, **point} for point in points]
    return rows


def _reliability_points(diagram: Any) -> list[dict]:
    if not isinstance(diagram, dict):
        return []
    columns = [diagram.get(key) for key in ("confidence", "accuracy", "items")]
    if not all(isinstance(c, list) for c in columns) or len({len(c) for c in columns}) != 1 or len(columns[0]) > 100:
        return []
    points = []
    for confidence, accuracy, items in zip(*columns):
        if confidence is None and accuracy is None:
            continue  # an empty bin
        numbers = (confidence, accuracy)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0 for v in numbers):
            return []
        if not isinstance(items, int) or isinstance(items, bool) or items < 1:
            return []
        points.append({"confidence": float(confidence), "accuracy": float(accuracy), "items": items})
    return points
