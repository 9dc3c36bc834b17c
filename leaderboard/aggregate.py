"""Result files -> one leaderboard: models x tasks, family means, average rank and Borda rank,
and how sure those ranks are.

Partial coverage is explicit. Means and ranks are computed only on the tasks that every
compared model scored (`common_tasks`); a model missing a task shows the gap and its reason in
its cell, and nothing is averaged over fewer tasks. A task that no shown model scored is left
out of the table (`unscored_tasks` keeps why). Ranks are scale-free and follow each main score's
declared direction; means use only tasks whose main score is bounded (CIDEr-D is not), and the
table says which were used. What a metric is (direction, bounds, display group) comes from the
result files, which carry their family's description: nothing here knows a family or a metric.

Rank uncertainty: each result keeps the bootstrap replicates of its main score, drawn from
resamples that depend only on the number of test items and the seed (harness/scoring/bootstrap.py).
On the same test items, replicate b of every model is the same resample, so re-ranking the
models on each replicate is a paired bootstrap of the average rank.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import ValidationError
from scipy.stats import rankdata

from harness.evaluation import MetricInfo
from harness.results import DISTILLATION_REPORT, TaskResult

SEPARATED = 0.95  # two models are told apart when one ranks ahead in at least this share of resamples


@dataclass
class Cell:
    status: str  # ok | skipped | failed | missing
    value: float | None = None
    ci95: tuple[float, float] | None = None
    reason: str | None = None
    std: float | None = None
    replicates: np.ndarray | None = None  # bootstrap replicates of the main score
    fingerprint: str | None = None  # of the dataset it was scored on

    @property
    def label(self) -> str:
        """What the table shows: the score with its 95% CI, or why there is none."""
        if self.status != "ok" or self.value is None:
            return f"{self.status}: {self.reason or 'no result'}"
        if self.ci95:
            return f"{self.value:.3f} [{self.ci95[0]:.3f}, {self.ci95[1]:.3f}]"
        return f"{self.value:.3f} ± {self.std:.3f}" if self.std else f"{self.value:.3f}"


@dataclass
class RankUncertainty:
    """Average rank over the common tasks, bootstrapped (paired resamples of the test items)."""

    models: list[str]
    point: np.ndarray  # (n_models,) average rank
    low: np.ndarray  # 2.5th percentile over resamples
    high: np.ndarray  # 97.5th percentile
    ahead: np.ndarray  # (n, n): share of resamples where model i's average rank is better than j's (ties 1/2)
    paired_tasks: list[str]  # tasks whose replicates were resampled
    fixed_tasks: list[str]  # common tasks without comparable replicates: their ranks stay as measured
    n_resamples: int

    def tied_with(self, model: str) -> list[str]:
        """Models this one cannot be told apart from (neither ranks ahead in >= 95% of resamples).
        Without any resampled task (n_resamples 0) nothing can be told apart: every other model."""
        i = self.models.index(model)
        if self.n_resamples == 0:
            return [m for m in self.models if m != model]
        return [m for j, m in enumerate(self.models)
                if j != i and 1 - SEPARATED < self.ahead[i, j] < SEPARATED]


@dataclass
class Leaderboard:
    models: list[str]  # result folder names (model slugs)
    tasks: list[str]  # tasks at least one model scored
    families: dict[str, str]  # task -> family
    cells: dict[tuple[str, str], Cell]
    model_info: dict[str, dict]  # slug -> name, weights, n_parameters, embed_dim, items_per_s, hub_id, ...
    main_scores: dict[str, str]  # task -> name of its main score
    main_info: dict[str, MetricInfo] = field(default_factory=dict)  # task -> its main score's description
    family_titles: dict[str, str] = field(default_factory=dict)  # family -> how it reads in headings
    warnings: list[str] = field(default_factory=list)
    unscored_tasks: dict[str, str] = field(default_factory=dict)  # task no model scored -> why (first reason)

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
        ranks = np.stack([rankdata([-self._sign(t) * self.score(m, t) for m in self.models]) for t in tasks])
        return dict(zip(self.models, ranks.mean(axis=0).tolist()))

    def rank_uncertainty(self, level: float = 0.95) -> RankUncertainty | None:
        """Bootstrap interval of each model's average rank; None without a common task."""
        tasks = self.common_tasks
        if not tasks or len(self.models) < 2:
            return None
        draws: dict[str, np.ndarray] = {}
        for task in tasks:
            cells = [self.cells[(m, task)] for m in self.models]
            lengths = {len(c.replicates) if c.replicates is not None else 0 for c in cells}
            if 0 not in lengths and len(lengths) == 1 and len({c.fingerprint for c in cells}) == 1:
                draws[task] = np.stack([c.replicates for c in cells])  # (n_models, B), paired by resample
        n_resamples = min((d.shape[1] for d in draws.values()), default=1)
        total = np.zeros((n_resamples, len(self.models)))
        for task in tasks:
            if task in draws:
                scores = draws[task][:, :n_resamples].T  # (B, n_models)
            else:
                scores = np.tile([self.score(m, task) for m in self.models], (n_resamples, 1))
            total += rankdata(-self._sign(task) * scores, axis=1)
        ranks = total / len(tasks)
        tail = (1 - level) / 2 * 100
        low, high = np.percentile(ranks, [tail, 100 - tail], axis=0)
        ahead = ((ranks[:, :, None] < ranks[:, None, :]).mean(axis=0)
                 + 0.5 * (ranks[:, :, None] == ranks[:, None, :]).mean(axis=0))
        point = np.array([self.average_rank()[m] for m in self.models])
        return RankUncertainty(list(self.models), point, low, high, ahead, [t for t in tasks if t in draws],
                               [t for t in tasks if t not in draws], n_resamples if draws else 0)

    def borda(self) -> dict[str, float]:
        """Borda count over common tasks: per task, a model gets one point per model it beats
        and half a point per tie (MTEB's aggregation)."""
        points = dict.fromkeys(self.models, 0.0)
        for task in self.common_tasks:
            values = {m: self._sign(task) * self.score(m, task) for m in self.models}
            for m in self.models:
                points[m] += sum(1.0 if values[m] > values[o] else 0.5 if values[m] == values[o] else 0.0
                                 for o in self.models if o != m)
        return points

    def mean_tasks(self, family: str | None = None) -> list[str]:
        return [t for t in self.common_tasks if self._bounded(t) and (family is None or self.families[t] == family)]

    def mean(self, model: str, family: str | None = None) -> float | None:
        tasks = self.mean_tasks(family)
        return float(np.mean([self.score(model, t) for t in tasks])) if tasks else None

    def _info(self, task: str) -> MetricInfo:
        return self.main_info.get(task, MetricInfo())

    def _bounded(self, task: str) -> bool:
        return self._info(task).bounded

    def _sign(self, task: str) -> float:
        """+1 where higher is better, -1 where lower is: sign * score is then higher-is-better."""
        return 1.0 if self._info(task).higher_is_better else -1.0

    def coverage(self, model: str) -> str:
        """'<scored>/<tasks>' and what the gaps are, e.g. '6/8 (2 skipped)'."""
        statuses = [self.cells[(model, t)].status for t in self.tasks]
        gaps = {s: statuses.count(s) for s in ("skipped", "failed", "missing") if s in statuses}
        text = f"{statuses.count('ok')}/{len(self.tasks)}"
        return text + (f" ({', '.join(f'{n} {s}' for s, n in gaps.items())})" if gaps else "")

    def ranked_models(self) -> list[str]:
        average_rank = self.average_rank()
        return sorted(self.models, key=lambda m: (np.nan_to_num(average_rank[m], nan=np.inf), m))

    def overview(self) -> list[dict]:
        """Rows in rank order, scores first: rank, model, means, one column per task (a number, or
        None where the model has no score: `cell_labels` says why), then the model's metadata."""
        average_rank, borda = self.average_rank(), self.borda()
        borda_order = sorted(self.models, key=lambda m: -borda[m])
        uncertainty = self.rank_uncertainty()
        rows = []
        for model in self.ranked_models():
            info = self.model_info[model]
            row = {"average_rank": average_rank[model]}
            if uncertainty is not None:
                i = uncertainty.models.index(model)
                row["rank_ci_low"], row["rank_ci_high"] = float(uncertainty.low[i]), float(uncertainty.high[i])
            row.update({"model": info["name"], "mean": self.mean(model)})
            for family in sorted(set(self.families.values())):
                row[f"mean:{family}"] = self.mean(model, family)
            for task in self.tasks:
                row[task] = self.cells[(model, task)].value if self.cells[(model, task)].status == "ok" else None
            row.update({"borda_rank": borda_order.index(model) + 1, "borda_points": borda[model],
                        "coverage": self.coverage(model), "parameters": info["n_parameters"],
                        "embed_dim": info["embed_dim"], "items_per_s": info["items_per_s"],
                        "weights": info["weights"], "licence": info["licence"], "hub_id": info["hub_id"],
                        "revision": info["revision"], "date": info["date"]})
            rows.append(row)
        return rows

    def cell_labels(self) -> list[dict]:
        """Per overview row (same order): task -> the text its cell shows (score [CI], or why missing)."""
        return [{task: self.cells[(model, task)].label for task in self.tasks} for model in self.ranked_models()]


def load_results(folder: Path) -> tuple[list[tuple[str, TaskResult]], list[str]]:
    """(model slug, result) for every result file; malformed files become warnings."""
    results, warnings = [], []
    for path in sorted(Path(folder).glob("*/*.json")):
        if path.name == DISTILLATION_REPORT:  # a distillation report, read by load_distillation_reports
            continue
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
    all_tasks = sorted({r.task for _, r in results})
    scored = {r.task for _, r in results if r.status == "ok"}
    tasks = [t for t in all_tasks if t in scored]
    unscored = {t: next(f"{r.status}: {r.reason}" for _, r in results if r.task == t) for t in all_tasks if t not in scored}
    families = {r.task: r.family for _, r in results}
    main_names = {r.task: r.main_score.name for _, r in results}
    by_task: dict[str, list[TaskResult]] = defaultdict(list)
    for _, result in results:
        by_task[result.task].append(result)
    main_info = {t: _main_info(t, main_names[t], by_task[t]) for t in tasks}
    titles = {r.family: r.family_title or r.family.replace("_", " ") for _, r in results}
    cells, info = {}, {}
    for model in models:
        for task in tasks:
            result = by_model[model].get(task)
            if result is None:
                cells[(model, task)] = Cell("missing", reason="not run for this model")
            elif result.status == "ok":
                main = result.metrics.get(result.main_score.name)
                replicates = result.main_score.replicates
                cells[(model, task)] = Cell("ok", result.main_score.value, main.ci95 if main else None,
                                            std=main.std if main else None,
                                            replicates=np.asarray(replicates) if replicates else None,
                                            fingerprint=result.dataset.fingerprint)
            else:
                cells[(model, task)] = Cell(result.status, reason=result.reason)
        info[model] = _model_info(list(by_model[model].values()))
    return Leaderboard(models, tasks, {t: families[t] for t in tasks}, cells, info,
                       {t: main_names[t] for t in tasks}, main_info, titles, list(warnings or []), unscored)


def _main_info(task: str, main: str, results: list[TaskResult]) -> MetricInfo:
    """The main score's description as its results carry it. Files older than schema 4 carry none:
    higher is taken as better, and the score as bounded if every value lies in [0, 1]."""
    described = next((r.metric_info[main] for r in results if main in r.metric_info), None)
    if described is not None:
        return described
    values = [r.main_score.value for r in results if r.status == "ok" and r.main_score.value is not None]
    inside = all(0.0 <= v <= 1.0 for v in values)
    return MetricInfo(bounds=(0.0, 1.0) if inside else (None, None))


def _model_info(results: list[TaskResult]) -> dict:
    ok = [r for r in results if r.status == "ok"]
    known = ok or results
    first = known[0]
    # instruments read no pixels: their "throughput" is not a speed anyone could compare
    rates = [r.timings.items_per_s for r in ok if r.timings.items_per_s and r.model.weights != "instrument"]
    pick = lambda key: next((getattr(r.model, key) for r in known if getattr(r.model, key)), None)  # noqa: E731
    return {"name": first.model.name, "weights": first.model.weights, "n_parameters": pick("n_parameters"),
            "embed_dim": pick("embed_dim"), "items_per_s": float(np.median(rates)) if rates else None,
            "hub_id": pick("hub_id"), "revision": pick("revision"), "licence": pick("licence"),
            "date": max((r.date for r in results if r.date), default=None)}


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


TRUNCATED = re.compile(r"(.*)@(\d+)d")  # `harness run --dims`: the model's name @ the dims kept


def is_truncated(model_name: str) -> bool:
    return TRUNCATED.fullmatch(model_name) is not None


def matryoshka_curves(results: list[tuple[str, TaskResult]]) -> list[dict]:
    """Score against embedding dim for models scored at truncated dims (`harness run --dims`):
    rows of model, task, dim, score (the untruncated result at its full dim)."""
    ok = [r for _, r in results if r.status == "ok"]
    truncated = {(TRUNCATED.fullmatch(r.model.name)[1], r.task) for r in ok if is_truncated(r.model.name)}
    rows = []
    for r in ok:
        match = TRUNCATED.fullmatch(r.model.name)
        base, dim = (match[1], int(match[2])) if match else (r.model.name, r.model.embed_dim)
        if (base, r.task) in truncated and dim:
            rows.append({"model": base, "task": r.task, "dim": dim, "score": r.main_score.value})
    return sorted(rows, key=lambda row: (row["model"], row["task"], row["dim"]))
