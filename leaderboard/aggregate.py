"""Result files -> one leaderboard: models x tasks, family means, average rank and Borda rank.

Partial coverage is explicit. Means and ranks are computed only on the tasks that every
compared model scored (`common_tasks`); a model missing a task shows the gap and its reason in
its cell, and nothing is averaged over fewer tasks. Ranks are scale-free; means use only tasks
whose main score lies in [0, 1] (CIDEr-D does not), and the table says which were used.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import ValidationError
from scipy.stats import rankdata

from harness.results import TaskResult

UNBOUNDED_SCORES = {"cider_d"}  # main scores outside [0, 1]: they enter ranks, not means


@dataclass
class Cell:
    status: str  # ok | skipped | failed | missing
    value: float | None = None
    ci95: tuple[float, float] | None = None
    reason: str | None = None


@dataclass
class Leaderboard:
    models: list[str]  # result folder names (model slugs)
    tasks: list[str]
    families: dict[str, str]  # task -> family
    cells: dict[tuple[str, str], Cell]
    model_info: dict[str, dict]  # slug -> name, weights, n_parameters, embed_dim, items_per_s
    main_scores: dict[str, str]  # task -> name of its main score
    warnings: list[str] = field(default_factory=list)

    @property
    def common_tasks(self) -> list[str]:
        """Tasks scored (status ok) by every model: the only ones means and ranks use."""
        return [t for t in self.tasks if all(self.cells[(m, t)].status == "ok" for m in self.models)]

    def score(self, model: str, task: str) -> float | None:
        return self.cells[(model, task)].value

    def average_rank(self) -> dict[str, float]:
        """Mean over common tasks of each model's rank (1 = best, ties share the mean rank)."""
        tasks = self.common_tasks
        if not tasks:
            return {m: float("nan") for m in self.models}
        ranks = np.stack([rankdata([-self.score(m, t) for m in self.models]) for t in tasks])
        return dict(zip(self.models, ranks.mean(axis=0).tolist()))

    def borda(self) -> dict[str, float]:
        """Borda count over common tasks: per task, a model gets one point per model it beats
        and half a point per tie (MTEB's aggregation)."""
        points = dict.fromkeys(self.models, 0.0)
        for task in self.common_tasks:
            values = {m: self.score(m, task) for m in self.models}
            for m in self.models:
                points[m] += sum(1.0 if values[m] > values[o] else 0.5 if values[m] == values[o] else 0.0
                                 for o in self.models if o != m)
        return points

    def mean_tasks(self, family: str | None = None) -> list[str]:
        return [t for t in self.common_tasks if self._bounded(t) and (family is None or self.families[t] == family)]

    def mean(self, model: str, family: str | None = None) -> float | None:
        tasks = self.mean_tasks(family)
        return float(np.mean([self.score(model, t) for t in tasks])) if tasks else None

    def _bounded(self, task: str) -> bool:
        return self.main_scores[task] not in UNBOUNDED_SCORES

    def coverage(self, model: str) -> str:
        """'<scored>/<tasks>' and what the gaps are, e.g. '6/18 (12 skipped)'."""
        statuses = [self.cells[(model, t)].status for t in self.tasks]
        gaps = {s: statuses.count(s) for s in ("skipped", "failed", "missing") if s in statuses}
        text = f"{statuses.count('ok')}/{len(self.tasks)}"
        return text + (f" ({', '.join(f'{n} {s}' for s, n in gaps.items())})" if gaps else "")

    def overview(self) -> list[dict]:
        """Rows sorted by average rank: model info, rank, Borda, means, then one column per task."""
        average_rank, borda = self.average_rank(), self.borda()
        borda_order = sorted(self.models, key=lambda m: -borda[m])
        rows = []
        for model in sorted(self.models, key=lambda m: (np.nan_to_num(average_rank[m], nan=np.inf), m)):
            row = {"model": self.model_info[model]["name"], "coverage": self.coverage(model),
                   "weights": self.model_info[model]["weights"],
                   "parameters": self.model_info[model]["n_parameters"],
                   "embed_dim": self.model_info[model]["embed_dim"],
                   "items_per_s": self.model_info[model]["items_per_s"],
                   "average_rank": average_rank[model], "borda_rank": borda_order.index(model) + 1,
                   "borda_points": borda[model], "mean": self.mean(model)}
            for family in sorted(set(self.families.values())):
                row[f"mean:{family}"] = self.mean(model, family)
            for task in self.tasks:
                cell = self.cells[(model, task)]
                row[task] = cell.value if cell.status == "ok" else f"{cell.status}: {cell.reason or 'no result'}"
            rows.append(row)
        return rows


def load_results(folder: Path) -> tuple[list[tuple[str, TaskResult]], list[str]]:
    """(model slug, result) for every result file; malformed files become warnings."""
    results, warnings = [], []
    for path in sorted(Path(folder).glob("*/*.json")):
        try:
            results.append((path.parent.name, TaskResult.model_validate(json.loads(path.read_text(encoding="utf-8")))))
        except (OSError, ValueError, ValidationError) as error:
            warnings.append(f"{path}: skipped, not a valid result file ({str(error).splitlines()[0][:120]})")
    return results, warnings


def build_leaderboard(results: list[tuple[str, TaskResult]], warnings: list[str] | None = None) -> Leaderboard:
    by_model: dict[str, dict[str, TaskResult]] = defaultdict(dict)
    for slug, result in results:
        by_model[slug][result.task] = result
    models = sorted(by_model)
    tasks = sorted({r.task for _, r in results})  # a task nobody could score still shows why
    families = {r.task: r.family for _, r in results}
    main_names = {r.task: r.main_score.name for _, r in results}
    cells, info = {}, {}
    for model in models:
        for task in tasks:
            result = by_model[model].get(task)
            if result is None:
                cells[(model, task)] = Cell("missing", reason="not run for this model")
            elif result.status == "ok":
                main = result.metrics.get(result.main_score.name)
                cells[(model, task)] = Cell("ok", result.main_score.value, main.ci95 if main else None)
            else:
                cells[(model, task)] = Cell(result.status, reason=result.reason)
        ok = [r for r in by_model[model].values() if r.status == "ok"]
        first = ok[0] if ok else next(iter(by_model[model].values()))
        # instruments read no pixels: their "throughput" is not a speed anyone could compare
        rates = [r.timings.items_per_s for r in ok if r.timings.items_per_s and r.model.weights != "instrument"]
        info[model] = {"name": first.model.name, "weights": first.model.weights,
                       "n_parameters": first.model.n_parameters, "embed_dim": first.model.embed_dim,
                       "items_per_s": float(np.median(rates)) if rates else None}
    return Leaderboard(models, tasks, {t: families[t] for t in tasks}, cells, info,
                       {t: main_names[t] for t in tasks}, list(warnings or []))


# The columns the robustness panel shows, per family (others stay in the result files)
ROBUSTNESS_COLUMNS = {
    "stain_robustness": ["plism_score", "cosine_all", "top_10_inter_scanner", "top_10_inter_staining",
                         "top_10_both", "in_domain_balanced_accuracy", "cross_domain_drop"],
    "transform_invariance": ["mean_cosine", "cosine_hed_jitter", "cosine_gaussian_blur", "cosine_jpeg",
                             "cosine_gamma", "cosine_flip", "cosine_rot90"],
}


def robustness_tables(results: list[tuple[str, TaskResult]]) -> dict[str, list[dict]]:
    """task -> one row per model: the robustness metrics of that task (None where not reported)."""
    tables: dict[str, list[dict]] = defaultdict(list)
    for _, result in sorted(results, key=lambda item: (item[1].task, item[1].model.name)):
        columns = ROBUSTNESS_COLUMNS.get(result.family)
        if columns is None or result.status != "ok":
            continue
        row = {"model": result.model.name}
        row.update({c: result.metrics[c].mean if c in result.metrics else None for c in columns})
        tables[result.task].append(row)
    return dict(tables)


def load_distillation_reports(folder: Path) -> tuple[list[dict], list[str]]:
    """The teacher-vs-student reports `harness distill --score` writes (<slug>/distillation.json)."""
    reports, warnings = [], []
    for path in sorted(Path(folder).glob("*/distillation.json")):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(report, dict) or "teachers" not in report:
                raise ValueError("no 'teachers' table")
            reports.append(report)
        except (OSError, ValueError) as error:
            warnings.append(f"{path}: skipped, not a distillation report ({str(error).splitlines()[0][:100]})")
    return reports, warnings


def retention_rows(report: dict) -> list[dict]:
    """One row per (teacher, task) of a distillation report, plus the size and speed ratios."""
    rows = []
    for teacher, table in report["teachers"].items():
        params, speed = table.get("parameters", {}), table.get("items_per_s", {})
        for task, row in table.get("tasks", {}).items():
            rows.append({"student": report["student"], "teacher": teacher, "task": task, "teacher score": row["teacher"],
                         "student score": row["student"], "retention %": row["retention"],
                         "median retention %": table.get("median_retention"),
                         "parameters (student / teacher)": _ratio(params.get("student"), params.get("teacher")),
                         "throughput (student / teacher)": _ratio(speed.get("student"), speed.get("teacher"))})
            if "tiles_per_slide" in table:  # slide tasks (a cross-magnification student reads fewer tiles)
                tiles, slides = table["tiles_per_slide"], table.get("slides_per_min", {})
                rows[-1]["tiles per slide (student / teacher)"] = _ratio(tiles.get("student"), tiles.get("teacher"))
                rows[-1]["slides/min (student / teacher)"] = _ratio(slides.get("student"), slides.get("teacher"))
    return rows


def _ratio(a, b) -> float | None:
    return float(a) / float(b) if a and b else None


def matryoshka_curves(results: list[tuple[str, TaskResult]]) -> list[dict]:
    """Score against embedding dim for models scored at truncated dims (`harness run --dims`):
    rows of model, task, dim, score (the untruncated result at its full dim)."""
    import re

    ok = [r for _, r in results if r.status == "ok"]
    truncated = {re.sub(r"@\d+d$", "", r.model.name) for r in ok if re.search(r"@\d+d$", r.model.name)}
    rows = []
    for r in ok:
        match = re.fullmatch(r"(.*)@(\d+)d", r.model.name)
        base, dim = (match[1], int(match[2])) if match else (r.model.name, r.model.embed_dim)
        if base in truncated and dim:
            rows.append({"model": base, "task": r.task, "dim": dim, "score": r.main_score.value})
    return sorted(rows, key=lambda row: (row["model"], row["task"], row["dim"]))
