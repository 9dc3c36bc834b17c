"""Result files -> one leaderboard: models x tasks, family means, average rank and Borda rank,
and how sure those ranks are.

Partial coverage is explicit. Means and ranks are computed only on the tasks that every
compared model scored (`common_tasks`); a model missing a task shows the gap and its reason in
its cell, and nothing is averaged over fewer tasks. A model with no valid score at all (every
result skipped, failed or invalid) is listed but not compared: it has nothing to be ranked on,
and counted in, it would leave no common task and no rank for anyone.

A board can declare its tasks (`board_tasks`: a public board's operator does, MTEB's way): then
only those tasks are shown, and the compared models are those with a valid score on every one of
them; the others are listed unranked. Without a declaration one partial model (a submission that
failed or was skipped on most tasks) narrows the common tasks, and so reorders the board, for
everyone; with one, it only leaves itself unranked. A task that no shown model
scored is left out of the table (`unscored_tasks` keeps why). Ranks are scale-free and follow
each main score's declared direction; means use only tasks whose main score is bounded (CIDEr-D
is not), and the table says which were used. What a metric is (direction, bounds, display
group) comes from the result files, which carry their family's description: nothing here knows
a family or a metric.

Result files are untrusted data (anyone who can write the results folder or dataset). Each is
checked before it is shown: a main score that is missing, not finite or outside its metric's
bounds makes its cell `invalid` (out of means and ranks, the reason in the cell, a warning
naming the file); what a metric is comes from the registered family when the board knows it
(`families`), otherwise from what the task's files agree on, so one file cannot flip a task's
direction; two folders claiming one model name are shown with their folder names. A result of a
task the registry names, scored at another version or with other params than the registry's, is
`stale`: shown, not ranked, until rescored.

Rank uncertainty: each result keeps the bootstrap replicates of its main score, drawn from
resamples that depend only on the number of test items and the seed (harness/scoring/bootstrap.py).
On the same test items, replicate b of every model is the same resample, so re-ranking the
models on each replicate is a paired bootstrap of the average rank.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from pydantic import ValidationError
from scipy.stats import rankdata

from harness.bounded_read import read_json
from harness.errors import first_problem
from harness.evaluation import MetricInfo, changed_param, resolved_params
from harness.results import DISTILLATION_REPORT, MAX_RESULT_BYTES, TaskResult

FOLDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # a results folder or task name: no path in it
SEPARATED = 0.95  # two models are told apart when one ranks ahead in at least this share of resamples


OVERLAP_MARK = "⚠ trained on"  # a cell whose test images come from the model's declared training data


@dataclass
class Cell:
    status: str  # ok | skipped | failed | missing | invalid (a result file whose score cannot be shown)
    #              | stale (a registered task scored at another version or with other params than the registry's)
    value: float | None = None
    ci95: tuple[float, float] | None = None
    reason: str | None = None
    std: float | None = None
    replicates: np.ndarray | None = None  # bootstrap replicates of the main score
    fingerprint: str | None = None  # of the dataset it was scored on
    overlap: list[str] | None = None  # the model's declared training data its test images come from

    @property
    def label(self) -> str:
        """What the table shows: the score with its 95% CI, or why there is none; a score whose
        test images come from the model's declared training data is marked with where from."""
        if self.status != "ok" or self.value is None:
            return f"{self.status}: {self.reason or 'no result'}"
        if self.ci95:
            text = f"{self.value:.3f} [{self.ci95[0]:.3f}, {self.ci95[1]:.3f}]"
        else:
            text = f"{self.value:.3f} ± {self.std:.3f}" if self.std else f"{self.value:.3f}"
        return f"{text} {OVERLAP_MARK} {', '.join(self.overlap)}" if self.overlap else text


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

    def tied_pairs(self, limit: int | None = None) -> tuple[list[tuple[str, str]], int]:
        """(the first `limit` pairs that cannot be told apart, in the models' order; how many there are
        in all). One pass over the comparison matrix: a board of 4,000 models has 8 million pairs."""
        n = len(self.models)
        tied = ~np.eye(n, dtype=bool) if self.n_resamples == 0 else (
            (self.ahead > 1 - SEPARATED) & (self.ahead < SEPARATED))
        first, second = np.nonzero(np.triu(tied, 1))
        chosen = slice(None) if limit is None else slice(0, limit)
        return ([(self.models[i], self.models[j]) for i, j in zip(first[chosen].tolist(), second[chosen].tolist())],
                len(first))


DEFAULT_INFO = MetricInfo()  # a task's main score described by nothing: higher is better, unbounded


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
    board_tasks: list[str] | None = None  # the tasks the board declares (None: whatever was scored)

    @cached_property  # the board is built once and not changed after: each view asks for these many times
    def compared_models(self) -> list[str]:
        """The models ranked. Without declared board tasks: those with at least one valid score (a
        model whose every result was skipped, failed or invalid, such as a submission scored on
        tasks whose data the backend lacks or a hand-edited file, is listed with its reasons,
        unranked). With them: those with a valid score on every declared task."""
        if self.board_tasks is not None:
            return [m for m in self.models if all(self._ok(m, t) for t in self.board_tasks)]
        return [m for m in self.models if any(self._ok(m, t) for t in self.tasks)]

    @cached_property
    def _compared(self) -> frozenset[str]:
        return frozenset(self.compared_models)

    def _ok(self, model: str, task: str) -> bool:
        cell = self.cells.get((model, task))
        return cell is not None and cell.status == "ok"

    def unranked_reason(self, model: str) -> str | None:
        """Why a listed model has no rank (None for a ranked one)."""
        if model in self._compared:
            return None
        if self.board_tasks is None:
            return "no valid score: every result skipped, failed, invalid or stale"
        lacking = [t for t in self.board_tasks if not self._ok(model, t)]
        return f"no valid score on {len(lacking)} of the board's {len(self.board_tasks)} tasks ({', '.join(lacking)})"

    @cached_property
    def common_tasks(self) -> list[str]:
        """Tasks scored (status ok) by every compared model: the only ones means and ranks use."""
        compared = self.compared_models
        return [t for t in self.tasks if all(self.cells[(m, t)].status == "ok" for m in compared)]

    def score(self, model: str, task: str) -> float | None:
        return self.cells[(model, task)].value

    def average_rank(self) -> dict[str, float]:
        """Mean over common tasks of each compared model's rank (1 = best, ties share the mean rank);
        NaN for a model that is not compared, or for all without a common task."""
        return dict(self._average_rank)

    @cached_property
    def _average_rank(self) -> dict[str, float]:
        tasks, compared = self.common_tasks, self.compared_models
        ranks = dict.fromkeys(self.models, float("nan"))
        if tasks:
            table = np.stack([rankdata([-self._sign(t) * self.score(m, t) for m in compared]) for t in tasks])
            ranks.update(zip(compared, table.mean(axis=0).tolist()))
        return ranks

    def rank_uncertainty(self, level: float = 0.95) -> RankUncertainty | None:
        """Bootstrap interval of each compared model's average rank; None without a common task.
        Computed once per level (the overview and the app's rank tab both ask)."""
        if level not in self._uncertainty:
            self._uncertainty[level] = self._rank_uncertainty(level)
        return self._uncertainty[level]

    @cached_property
    def _uncertainty(self) -> dict[float, RankUncertainty | None]:
        return {}

    def _rank_uncertainty(self, level: float) -> RankUncertainty | None:
        tasks, models = self.common_tasks, self.compared_models
        if not tasks or len(models) < 2:
            return None
        draws: dict[str, np.ndarray] = {}
        for task in tasks:
            cells = [self.cells[(m, task)] for m in models]
            lengths = {len(c.replicates) if c.replicates is not None else 0 for c in cells}
            if 0 not in lengths and len(lengths) == 1 and len({c.fingerprint for c in cells}) == 1:
                draws[task] = np.stack([c.replicates for c in cells])  # (n_models, B), paired by resample
        n_resamples = min((d.shape[1] for d in draws.values()), default=1)
        total = np.zeros((n_resamples, len(models)))
        for task in tasks:
            if task in draws:
                scores = draws[task][:, :n_resamples].T  # (B, n_models)
            else:
                scores = np.tile([self.score(m, task) for m in models], (n_resamples, 1))
            total += rankdata(-self._sign(task) * scores, axis=1)
        ranks = total / len(tasks)
        tail = (1 - level) / 2 * 100
        low, high = np.percentile(ranks, [tail, 100 - tail], axis=0)
        # how often each model ranks ahead of each other one, a row at a time: (resamples, models) at
        # once, where the whole (resamples, models, models) comparison took 2 GB at 1,000 models
        ahead = np.empty((len(models), len(models)))
        for i in range(len(models)):
            mine = ranks[:, i:i + 1]
            ahead[i] = (mine < ranks).mean(axis=0) + 0.5 * (mine == ranks).mean(axis=0)
        average_rank = self.average_rank()
        point = np.array([average_rank[m] for m in models])
        return RankUncertainty(list(models), point, low, high, ahead, [t for t in tasks if t in draws],
                               [t for t in tasks if t not in draws], n_resamples if draws else 0)

    def borda(self) -> dict[str, float]:
        """Borda count over common tasks: per task, a compared model gets one point per model it
        beats and half a point per tie (MTEB's aggregation); NaN for a model that is not compared.
        That is its ascending rank with ties averaged, less one (rank = models below + (ties + 1) / 2)."""
        compared = self.compared_models
        points = dict.fromkeys(self.models, float("nan"))
        total = np.zeros(len(compared))
        for task in self.common_tasks:
            total += rankdata([self._sign(task) * self.score(m, task) for m in compared]) - 1
        points.update(zip(compared, total.tolist()))
        return points

    def mean_tasks(self, family: str | None = None) -> list[str]:
        return [t for t in self.common_tasks if self._bounded(t) and (family is None or self.families[t] == family)]

    def mean(self, model: str, family: str | None = None) -> float | None:
        tasks = self.mean_tasks(family)
        if not tasks or model not in self._compared:
            return None
        return float(np.mean([self._goodness(model, t) for t in tasks]))

    def _goodness(self, model: str, task: str) -> float:
        """A bounded main score as higher-is-better within its bounds: an error of 0.1 in [0, 1]
        enters a mean as 0.9, so a mean never rewards the model with the larger error."""
        value = self.score(model, task)
        if self._info(task).higher_is_better:
            return value
        low, high = self._info(task).bounds
        return low + high - value

    def _info(self, task: str) -> MetricInfo:
        return self.main_info.get(task, DEFAULT_INFO)

    def higher_is_better(self, task: str) -> bool:
        """The direction of a task's main score, as its family declares it."""
        return self._info(task).higher_is_better

    def _bounded(self, task: str) -> bool:
        return self._info(task).bounded

    def _sign(self, task: str) -> float:
        """+1 where higher is better, -1 where lower is: sign * score is then higher-is-better."""
        return 1.0 if self.higher_is_better(task) else -1.0

    def coverage(self, model: str) -> str:
        """'<scored>/<tasks>' and what the gaps are, e.g. '6/8 (2 skipped)'."""
        statuses = [self.cells[(model, t)].status for t in self.tasks]
        gaps = {s: statuses.count(s) for s in ("skipped", "failed", "invalid", "stale", "missing") if s in statuses}
        text = f"{statuses.count('ok')}/{len(self.tasks)}"
        return text + (f" ({', '.join(f'{n} {s}' for s, n in gaps.items())})" if gaps else "")

    def ranked_models(self) -> list[str]:
        average_rank = self.average_rank()
        return sorted(self.models, key=lambda m: (np.nan_to_num(average_rank[m], nan=np.inf), m))

    def overview(self) -> list[dict]:
        """Rows in rank order, scores first: rank, model, means, one column per task (a number, or
        None where the model has no score: `cell_labels` says why), then the model's metadata."""
        average_rank, borda = self.average_rank(), self.borda()
        borda_order = sorted(self.models, key=lambda m: np.nan_to_num(-borda[m], nan=np.inf))
        uncertainty = self.rank_uncertainty()
        rows = []
        for model in self.ranked_models():
            info = self.model_info[model]
            row = {"average_rank": average_rank[model]}
            if uncertainty is not None and model in uncertainty.models:
                i = uncertainty.models.index(model)
                row["rank_ci_low"], row["rank_ci_high"] = float(uncertainty.low[i]), float(uncertainty.high[i])
            row.update({"model": info["name"], "mean": self.mean(model)})
            for family in sorted(set(self.families.values())):
                row[f"mean:{family}"] = self.mean(model, family)
            for task in self.tasks:
                row[task] = self.cells[(model, task)].value if self.cells[(model, task)].status == "ok" else None
            compared = not math.isnan(borda[model])
            row.update({"borda_rank": borda_order.index(model) + 1 if compared else None, "borda_points": borda[model],
                        "coverage": self.coverage(model), "parameters": info["n_parameters"],
                        "embed_dim": info["embed_dim"], "items_per_s": info["items_per_s"],
                        "weights": info["weights"], "teachers": info["teachers"], "no_overlap": info["no_overlap"],
                        "licence": info["licence"],
                        "hub_id": info["hub_id"],
                        "revision": info["revision"], "date": info["date"]})
            rows.append(row)
        return rows

    def valid(self, results: list[tuple[str, TaskResult]]) -> list[tuple[str, TaskResult]]:
        """Those of `results` whose cell on this board holds a valid score: what the panels beside
        the table (few-shot curves, calibration, robustness) may show; an invalid or stale result
        is no more shown there than it is ranked."""
        return [(slug, r) for slug, r in results
                if (cell := self.cells.get((slug, r.task))) is not None and cell.status == "ok"]

    def cell_labels(self) -> list[dict]:
        """Per overview row (same order): task -> the text its cell shows (score [CI], or why missing)."""
        return [{task: self.cells[(model, task)].label for task in self.tasks} for model in self.ranked_models()]


def load_results(folder: Path) -> tuple[list[tuple[str, TaskResult]], list[str]]:
    """(model slug, result) for every result file; malformed files become warnings naming them."""
    results, warnings = [], []
    for path in sorted(Path(folder).glob("*/*.json")):
        if path.name == DISTILLATION_REPORT:  # a distillation report, read by load_distillation_reports
            continue
        try:
            if not FOLDER.fullmatch(path.parent.name) or ".." in path.parent.name:
                raise ValueError("the folder name is not a model slug")
            result = TaskResult.model_validate(read_json(path, MAX_RESULT_BYTES, "result file"))
            if path.name != f"{result.task}.json":
                raise ValueError(f"it is named {path.name} but holds task '{result.task[:60]}'")
            results.append((path.parent.name, result))
        except ValidationError as error:
            loc, message = first_problem(error)
            warnings.append(f"{path}: skipped, not a valid result file ('{'.'.join(loc) or 'file'}': {message[:100]})")
        except (OSError, ValueError) as error:
            warnings.append(f"{path}: skipped, not a valid result file ({str(error).splitlines()[0][:120]})")
    return results, warnings


MAX_BOARD_TASKS = 1000


def parse_board_tasks(text: str | None) -> list[str] | None:
    """HARNESS_BOARD_TASKS ('task,task,...', what `harness leaderboard --tasks` and `harness push
    --space --tasks` write) -> the declared task names; None when unset or empty."""
    names = [name.strip() for name in (text or "").split(",") if name.strip()]
    if not names:
        return None
    bad = [name for name in names if not FOLDER.fullmatch(name) or ".." in name]
    problem = (f"not task names: {', '.join(bad[:3])[:200]}" if bad else
               f"more than {MAX_BOARD_TASKS} tasks" if len(names) > MAX_BOARD_TASKS else None)
    if problem:
        raise ValueError(f"HARNESS_BOARD_TASKS: {problem}; give task names separated by commas, as "
                         "`harness leaderboard --tasks` writes them")
    return list(dict.fromkeys(names))


def build_leaderboard(results: list[tuple[str, TaskResult]], warnings: list[str] | None = None,
                      families: Mapping[str, Any] | None = None,
                      board_tasks: list[str] | None = None,
                      registered: Mapping[str, tuple] | None = None) -> Leaderboard:
    """The board of these results. `families` (name -> family class, harness.tasks.FAMILIES): where a
    result's family is registered, its metrics are described by the family, not by the file.
    `board_tasks`: the tasks the board declares; results of other tasks are not shown, and a model
    is ranked only with a valid score on every declared task (see the module's docstring).
    `registered` (task -> (family, main score, params, version), from tasks.yaml): what those tasks
    are, whatever their files say; a task it does not name is what most of its files say. A result
    of a registered task at another version, or with other params, is `stale`."""
    warnings = list(warnings or [])
    if board_tasks is not None:
        board_tasks = list(dict.fromkeys(board_tasks))
        results = [(slug, r) for slug, r in results if r.task in board_tasks]
    by_model: dict[str, dict[str, TaskResult]] = defaultdict(dict)
    for slug, result in results:
        by_model[slug][result.task] = result
    models = sorted(by_model)
    all_tasks = sorted({r.task for _, r in results})
    by_task: dict[str, list[tuple[str, TaskResult]]] = defaultdict(list)
    for slug, result in results:
        by_task[result.task].append((slug, result))
    described = {t: _task_description(t, by_task[t], families or {}, (registered or {}).get(t)) for t in all_tasks}
    invalid: dict[tuple[str, str], str] = {}
    for task, (main, info, family, title) in described.items():
        for slug, result in by_task[task]:
            why = _invalid_reason(result, main, info, family, "the registry says" if registered and task in registered
                                  else "the task's other results say")
            if why is not None:
                invalid[(slug, task)] = why
                warnings.append(f"{slug}/{task}.json: shown as invalid and left out of means and ranks ({why})")
    stale: dict[tuple[str, str], str] = {}
    stale_reason = stale_check(registered, families or {})
    for task in all_tasks:
        for slug, result in by_task[task]:
            why = None if (slug, task) in invalid else stale_reason(result)
            if why is not None:
                stale[(slug, task)] = why
    if stale:  # one line for all: after a task's version moves on, every unrescored result is stale at once
        first = next(iter(stale.items()))
        warnings.append(f"{len(stale)} result(s) were computed with another version or parameters of their task than "
                        f"the registry's, shown as stale and left out of means and ranks until rescored (e.g. "
                        f"{first[0][0]}/{first[0][1]}.json: {first[1]})")
    invalid_or_stale = {**invalid, **stale}
    scored = {r.task for s, r in results if r.status == "ok" and (s, r.task) not in invalid_or_stale}
    tasks = [t for t in all_tasks if t in scored]
    unscored = {t: next(f"{r.status}: {r.reason}" for _, r in results if r.task == t) for t in all_tasks if t not in scored}
    unscored.update({t: "no result yet" for t in board_tasks or [] if t not in all_tasks})
    cells, info = {}, {}
    for model in models:
        for task in tasks:
            result = by_model[model].get(task)
            if result is None:
                cells[(model, task)] = Cell("missing", reason="not run for this model")
            elif (model, task) in invalid:
                cells[(model, task)] = Cell("invalid", reason=invalid[(model, task)])
            elif (model, task) in stale:
                cells[(model, task)] = Cell("stale", reason=stale[(model, task)])
            elif result.status == "ok":
                main = result.metrics.get(result.main_score.name)
                replicates = _usable_replicates(result.main_score.replicates, described[task][1])
                cells[(model, task)] = Cell("ok", result.main_score.value, main.ci95 if main else None,
                                            std=main.std if main else None,
                                            replicates=np.asarray(replicates) if replicates else None,
                                            fingerprint=data_fingerprint(result), overlap=result.training_overlap)
            else:
                cells[(model, task)] = Cell(result.status, reason=result.reason)
        info[model] = _model_info(list(by_model[model].values()))
    _name_apart(info, warnings)
    _name_other_data(tasks, models, cells, warnings)
    return Leaderboard(models, tasks, {t: described[t][2] for t in tasks}, cells, info,
                       {t: described[t][0] for t in tasks}, {t: described[t][1] for t in tasks},
                       {family: title for _, _, family, title in described.values()}, warnings, unscored,
                       board_tasks)


def data_fingerprint(result: TaskResult) -> str | None:
    """The data a score was computed on: its dataset's fingerprint, and a cross-cohort task's test
    cohort's beside it (a redrawn test cohort is other data too); None where the file has none."""
    tested = result.test_fingerprint
    if result.dataset.fingerprint is None or tested is None:
        return result.dataset.fingerprint
    return f"{result.dataset.fingerprint}+{tested[:64]}"


def _name_other_data(tasks: list[str], models: list[str], cells: dict[tuple[str, str], Cell],
                     warnings: list[str]) -> None:
    """A task whose scores were computed on different data (their dataset fingerprints differ: an
    unpinned Hub dataset read at two commits, a local copy with other files) ranks them as if on one
    test set; the board says so in one line for all such tasks (as for stale results: a banner per
    task would push the scores off the first screen), naming whose scores are on which data for the
    first. Which data is the task's own, nothing on the board can tell: none is left out.
    (Bootstrap ranks already pair only the scores of one fingerprint.)"""
    mixed: list[tuple[str, list[tuple[str, list[str]]]]] = []
    for task in tasks:
        on: dict[str, list[str]] = defaultdict(list)
        for model in models:
            cell = cells[(model, task)]
            if cell.status == "ok" and cell.fingerprint is not None:
                on[cell.fingerprint].append(model)
        if len(on) > 1:
            mixed.append((task, sorted(on.items(), key=lambda item: (-len(item[1]), item[0]))))
    if not mixed:
        return
    task, groups = mixed[0]
    shown = "; ".join(f"{fingerprint[:33]!r}: {first_names(names)}" for fingerprint, names in groups[:4])
    more = f"; and {len(groups) - 4} more" if len(groups) > 4 else ""
    others = f" (also {first_names([t for t, _ in mixed[1:]], 5)})" if len(mixed) > 1 else ""
    warnings.append(f"{len(mixed)} task(s) have scores computed on different versions of their data, compared as "
                    f"one{others}; e.g. task {task}: {len(groups)} versions (dataset fingerprints {shown}{more}); "
                    "rescore them on one")


def first_names(names: list[str], limit: int = 3) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def declared_family(result: TaskResult, registered: Mapping[str, tuple] | None) -> str:
    """The family the board files a result under: a registered task's is the registry's (as
    `build_leaderboard` judges it), whatever the file says; an unregistered task's, its file's."""
    declared = (registered or {}).get(result.task)
    return declared[0] if declared is not None else result.family


def _task_description(task: str, results: list[tuple[str, TaskResult]], families: Mapping[str, Any],
                      declared: tuple | None = None) -> tuple[str, MetricInfo, str, str]:
    """(main score, its description, family, family title) of a task: the registry's family, main
    score and params (`declared`), else what most of its files say they are (a flood of files could
    otherwise outvote the honest ones); the description from the registered family when there is
    one, else the one its files agree on (most of them; older files: higher is better, bounded if
    every value lies in [0, 1])."""
    voters = [(slug, r) for slug, r in results if r.status == "ok"] or results  # what the scores say they are
    if declared is not None:
        family, main, given = declared[:3]
    else:
        family = Counter(r.family for _, r in voters).most_common(1)[0][0]
        main = Counter(r.main_score.name for _, r in voters if r.family == family).most_common(1)[0][0]
        given = next(r for _, r in voters if r.family == family and r.main_score.name == main).params
    registered = families.get(family)
    if registered is not None:
        try:
            params = registered.Params.model_validate(given)
        except ValueError:
            params = registered.Params()
        info = registered.metrics(params).get(main, MetricInfo())
        return main, info, family, registered.title
    declared = [r.metric_info[main] for _, r in results if main in r.metric_info]
    if declared:
        info = Counter(declared).most_common(1)[0][0]
    else:
        values = [r.main_score.value for _, r in results if r.status == "ok" and r.main_score.value is not None]
        inside = all(0.0 <= v <= 1.0 for v in values)
        info = MetricInfo(bounds=(0.0, 1.0) if inside else (None, None))
    titles = [r.family_title for _, r in results if r.family == family and r.family_title]
    return main, info, family, Counter(titles).most_common(1)[0][0] if titles else family.replace("_", " ")


def _usable_replicates(replicates: list[float] | None, info: MetricInfo) -> list[float] | None:
    """A result's bootstrap replicates, or None (ranked as measured, not resampled) when any is not
    finite or lies outside the main score's bounds: they would rank, and decide head-to-heads,
    on numbers the score itself could not take."""
    if not replicates:
        return None
    # C loops, not a Python one per value (a board of 4,000 models x 15 tasks holds 6 million): a NaN
    # or an infinity makes the sum not finite (as would finite values summing past 1e308: unusable too)
    if not math.isfinite(sum(replicates)):
        return None
    low, high = info.bounds
    if (low is not None and min(replicates) < low) or (high is not None and max(replicates) > high):
        return None
    return replicates


def stale_check(registered: Mapping[str, tuple] | None, families: Mapping[str, Any]
                ) -> Callable[[TaskResult], str | None]:
    """A function: why a valid result of a registered task no longer measures what the task is, or
    None. It was scored at another version of the task, or with other parameters than the registry
    gives (a parameter only one side has, added or dropped since, is not a change). Unregistered
    tasks are not judged: nothing but their files says what they are, and one file must not outvote
    the others. Each task's params are resolved once, not once per result (a board re-reads every
    result on every click)."""
    resolved: dict[str, dict | None] = {}

    def registry_params(task: str, family: str, given: dict) -> dict | None:
        if task not in resolved:
            try:
                resolved[task] = resolved_params(families[family], given) if family in families else None
            except ValueError:
                resolved[task] = None
        return resolved[task]

    def reason(result: TaskResult) -> str | None:
        declared = (registered or {}).get(result.task)
        if result.status != "ok" or declared is None or len(declared) < 4 or declared[3] is None:
            return None
        family, _, given, version = declared[:4]
        if result.task_version != version:
            return f"computed at version {result.task_version} of the task, which is at version {version}"
        now = registry_params(result.task, family, given)
        changed = changed_param(now, result.params) if now is not None and result.params else None
        if changed is None:
            return None
        return (f"computed with {changed} = {str(result.params[changed])[:40]}, where the registry gives "
                f"{str(now[changed])[:40]}")

    return reason


def _invalid_reason(result: TaskResult, main: str, info: MetricInfo, family: str,
                    authority: str = "the task's other results say") -> str | None:
    """Why this result cannot be shown as its task's score, or None."""
    if result.status != "ok":
        return None  # a skipped or failed result shows its own reason
    if result.family != family or result.main_score.name != main:
        return (f"it says family '{result.family[:40]}', main score '{result.main_score.name[:40]}'; {authority} "
                f"'{family}', '{main}'")
    if main in result.metric_info and result.metric_info[main].higher_is_better != info.higher_is_better:
        return (f"it declares {main} {'higher' if result.metric_info[main].higher_is_better else 'lower'} is better, "
                "against its family")
    value = result.main_score.value
    if value is None or not math.isfinite(value):
        return f"status ok but the main score {main} is {value}"
    low, high = info.bounds
    if (low is not None and value < low) or (high is not None and value > high):
        return f"{main} = {value:g} lies outside its bounds [{low}, {high}]"
    return None


def folders_by_name(pairs) -> dict[str, list[str]]:
    """(folder, model name) pairs -> each name and the folders that claim it, in order."""
    folders: dict[str, list[str]] = defaultdict(list)
    for slug, name in pairs:
        if slug not in folders[name]:
            folders[name].append(slug)
    return dict(folders)


def _name_apart(info: dict[str, dict], warnings: list[str]) -> None:
    """Two result folders claiming one model name: each is shown as 'name [folder]', never merged
    or mistaken for the other."""
    folders = folders_by_name((slug, model["name"]) for slug, model in info.items())
    for name, slugs in folders.items():
        if len(slugs) > 1:
            warnings.append(f"model name '{name}' is claimed by the folders {', '.join(slugs)}: shown with their "
                            "folder names")
            for slug in slugs:
                info[slug]["name"] = f"{name} [{slug}]"


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
            "teachers": ", ".join(pick("teachers") or []) or None, "teacher_names": list(pick("teachers") or []),
            "no_overlap": no_overlap_share(ok),
            "date": max((r.date for r in results if r.date), default=None)}


def lineage_order(names: list[str], teachers: list[list[str]],
                  means: list[float | None]) -> tuple[list[int], list[float | None]]:
    """Rows (in rank order) rearranged so that each student sits right under the first of its
    teachers that is shown (students of students under them), the rest in rank order; and per row
    in the new order, a student's retention: its mean as a % of that teacher's (None for others,
    or where either mean is missing). A lineage that loops is placed in rank order."""
    index = {name: i for i, name in enumerate(names)}
    parent = [next((index[t] for t in taught_by if t in index and index[t] != i), None)
              for i, taught_by in enumerate(teachers)]
    children: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(parent):
        if p is not None:
            children[p].append(i)
    order: list[int] = []
    seen: set[int] = set()

    def place(i: int) -> None:
        stack = [i]
        while stack:
            row = stack.pop()
            if row in seen:
                continue
            seen.add(row)
            order.append(row)
            stack.extend(reversed(children[row]))

    for i in range(len(names)):
        if parent[i] is None:
            place(i)
    for i in range(len(names)):  # rows in a loop of teachers: in rank order
        place(i)

    def retention(i: int) -> float | None:
        p = parent[i]
        if p is None or means[i] is None or means[p] is None or not math.isfinite(means[i]) \
                or not math.isfinite(means[p]) or means[p] <= 0:
            return None
        return 100.0 * means[i] / means[p]

    return order, [retention(i) for i in order]


def no_overlap_share(ok: list[TaskResult]) -> str | None:
    """How many of a model's scored tasks test on images outside its declared training data:
    "3 of 5", with how many cannot be told (the model's or the dataset's sources undeclared)."""
    if not ok:
        return None
    clean = sum(r.training_overlap == [] for r in ok)
    unknown = sum(r.training_overlap is None for r in ok)
    return f"{clean} of {len(ok)}" + (f" ({unknown} unknown)" if unknown else "")


MAX_COPY_SPLITS = 8  # a dataset's splits a result may say copies of (train, val, test: three)


def split_copies(result: TaskResult) -> dict[str, int] | None:
    """{split: how many of its images are byte for byte images of an earlier split} as the run
    recorded it in the result's details (a published Hub dataset's copies, counted, not refused);
    None where it recorded none, or something else there (details are free-form, and untrusted)."""
    copies = result.details.get("copies_across_splits")
    if not isinstance(copies, dict) or not 0 < len(copies) <= MAX_COPY_SPLITS:
        return None
    kept = {str(split)[:50]: n for split, n in copies.items()
            if isinstance(n, int) and not isinstance(n, bool) and 0 < n <= 10**9}
    return kept if len(kept) == len(copies) else None


def split_copies_by_task(results: list[TaskResult]) -> dict[str, str]:
    """task -> what its results say of the dataset's copies across splits, e.g. "2 of 9 test items"
    (the first result that says it: one dataset, one count)."""
    said: dict[str, str] = {}
    for result in results:
        copies = split_copies(result) if result.status == "ok" and result.task not in said else None
        if copies:
            said[result.task] = ", ".join(
                f"{n:,}" + (f" of {result.n_samples[split]:,}" if isinstance(result.n_samples.get(split), int) else "")
                + f" {split} item{'s' if n > 1 else ''}" for split, n in copies.items())
    return said


def suite_rows(board: Leaderboard, suites: Mapping[str, Any]) -> list[dict]:
    """One row per model (rank order): each suite's aggregate as its published table computes it
    (`aggregate: mean`: the mean main score over the suite's tasks), None unless the model scored
    every task of the suite, and how many it scored ('<suite> scored': '3/9'). `suites`: name ->
    the registry's SuiteSpec; suites without an aggregate, or that no shown model touched, are left out."""
    shown = {name: spec for name, spec in suites.items()
             if spec.aggregate == "mean" and any(t in board.tasks for t in spec.tasks)}
    rows = []
    for model in board.ranked_models():
        row = {"model": board.model_info[model]["name"]}
        for name, spec in shown.items():
            cells = [board.cells.get((model, task)) for task in spec.tasks]
            values = [c.value for c in cells if c is not None and c.status == "ok"]
            row[name] = float(np.mean(values)) if len(values) == len(spec.tasks) else None
            row[f"{name} scored"] = f"{len(values)}/{len(spec.tasks)}"
        rows.append(row)
    return rows if shown else []
