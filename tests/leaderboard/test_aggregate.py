"""Aggregation on hand-made result files: ranks, Borda, means, and explicit partial coverage."""

import json

import numpy as np
import pytest

from harness.leaderboard.aggregate import build_leaderboard, load_results
from tests.support.result_files import write_result


@pytest.fixture
def results(tmp_path):
    # three models; c has no result for t3 and a failed t2; t4 uses an unbounded score
    for model, scores in {"a": [0.9, 0.8, 0.7, 5.0], "b": [0.8, 0.9, 0.6, 3.0], "c": [0.7, None, None, 4.0]}.items():
        write_result(tmp_path, model, "t1", "tile_classification", scores[0])
        if model == "c":
            write_result(tmp_path, model, "t2", "retrieval", status="failed", reason="disk full")
        else:
            write_result(tmp_path, model, "t2", "retrieval", scores[1], main="map@5")
            write_result(tmp_path, model, "t3", "tile_classification", scores[2])
        write_result(tmp_path, model, "t4", "report_generation", scores[3], main="cider_d")
    (tmp_path / "a" / "broken.json").write_text("{not json")
    return tmp_path


def test_partial_coverage_ranks_only_common_tasks(results):
    loaded, warnings = load_results(results)
    board = build_leaderboard(loaded, warnings)
    assert len(warnings) == 1 and "broken.json" in warnings[0]
    assert board.tasks == ["t1", "t2", "t3", "t4"]
    assert board.common_tasks == ["t1", "t4"]  # c failed t2 and never ran t3
    # t1: a > b > c; t4 (cider): a > c > b
    assert board.average_rank() == {"a": 1.0, "b": 2.5, "c": 2.5}
    assert board.borda() == {"a": 4.0, "b": 1.0, "c": 1.0}
    # means use only bounded common tasks (t1): never t2/t3 (not common) nor t4 (CIDEr-D)
    assert board.mean_tasks() == ["t1"] and board.mean("b") == pytest.approx(0.8)
    assert board.mean("a", "report_generation") is None


def test_overview_shows_gaps_with_reasons(results):
    board = build_leaderboard(*load_results(results))
    rows = {row["model"]: row for row in board.overview()}
    labels = dict(zip([row["model"] for row in board.overview()], board.cell_labels()))
    assert [row["model"] for row in board.overview()][0] == "a"
    # cells stay numbers (None where missing); the label says why, and shows the CI where there is one
    assert rows["c"]["t2"] is None and labels["c"]["t2"] == "failed: disk full"
    assert rows["c"]["t3"] is None and labels["c"]["t3"] == "missing: not run for this model"
    assert labels["b"]["t2"] == "0.900 [0.890, 0.910]"
    assert rows["c"]["coverage"] == "2/4 (1 failed, 1 missing)" and rows["a"]["coverage"] == "4/4"
    assert rows["b"]["t2"] == pytest.approx(0.9)
    assert rows["a"]["borda_rank"] == 1 and rows["a"]["parameters"] == 1000 and rows["a"]["items_per_s"] == 10.0


def test_ties_share_rank_and_borda_points(tmp_path):
    for model in ("x", "y"):
        write_result(tmp_path, model, "t", "tile_classification", 0.5)
    board = build_leaderboard(*load_results(tmp_path))
    assert board.average_rank() == {"x": 1.5, "y": 1.5} and board.borda() == {"x": 0.5, "y": 0.5}


def test_no_common_task_gives_no_rank(tmp_path):
    write_result(tmp_path, "x", "t1", "tile_classification", 0.5)
    write_result(tmp_path, "y", "t2", "tile_classification", 0.5)
    board = build_leaderboard(*load_results(tmp_path))
    assert board.common_tasks == [] and all(np.isnan(v) for v in board.average_rank().values())
    assert board.mean("x") is None


def test_a_task_no_model_could_score_still_shows_why(tmp_path):
    write_result(tmp_path, "x", "t", "tile_classification", 0.5)
    write_result(tmp_path, "x", "real", "tile_classification", status="skipped", reason="no data here")
    board = build_leaderboard(*load_results(tmp_path))
    [row] = board.overview()
    # a task no model scored is no column (it would be a column of reasons): it is listed with why
    assert board.tasks == ["t"] and board.common_tasks == ["t"] and "real" not in row
    assert board.unscored_tasks == {"real": "skipped: no data here"}
    assert row["coverage"] == "1/1" and row["mean"] == 0.5


def test_a_distillation_report_is_not_read_as_a_result(tmp_path):
    write_result(tmp_path, "student", "t", "tile_classification", 0.5)
    (tmp_path / "student" / "distillation.json").write_text(json.dumps({"student": "student", "teachers": {}}))
    loaded, warnings = load_results(tmp_path)
    assert warnings == [] and [r.task for _, r in loaded] == ["t"]


def paired_results(tmp_path, offsets: dict[str, float], noise: dict[str, int] | None = None, n=400):
    """Two tasks; each model's replicates = a shared resample effect + its offset (+ its own noise)."""
    rng = np.random.default_rng(0)
    for task in ("t1", "t2"):
        shared = rng.normal(0, 0.05, n)
        for model, offset in offsets.items():
            own = np.random.default_rng(noise[model]).normal(0, 0.05, n) if noise and model in noise else 0.0
            replicates = 0.7 + offset + shared + own
            write_result(tmp_path, model, task, "tile_classification", float(np.mean(replicates)),
                         replicates=replicates)
    return build_leaderboard(*load_results(tmp_path))


def test_paired_replicates_tell_apart_models_whose_intervals_overlap(tmp_path):
    # b is 0.01 ahead of a on every resample: its CI overlaps a's (sd 0.05) but it always ranks ahead
    board = paired_results(tmp_path, {"a": 0.0, "b": 0.01, "c": -0.3})
    uncertainty = board.rank_uncertainty()
    assert uncertainty.paired_tasks == ["t1", "t2"] and uncertainty.n_resamples == 400
    i = {m: uncertainty.models.index(m) for m in "abc"}
    assert uncertainty.ahead[i["b"], i["a"]] == 1.0 and uncertainty.tied_with("a") == []
    assert uncertainty.low[i["b"]] == uncertainty.high[i["b"]] == 1.0


def test_unpaired_noise_leaves_close_models_tied(tmp_path):
    # the same gap, but each model's replicates carry their own noise (sd 0.05): b and a cannot be told apart
    board = paired_results(tmp_path, {"a": 0.0, "b": 0.01, "c": -0.3}, noise={"a": 1, "b": 2})
    uncertainty = board.rank_uncertainty()
    assert uncertainty.tied_with("a") == ["b"] and uncertainty.tied_with("c") == []
    i = {m: uncertainty.models.index(m) for m in "abc"}
    assert uncertainty.low[i["a"]] == 1.0 and uncertainty.high[i["a"]] == 2.0
    assert uncertainty.low[i["c"]] == uncertainty.high[i["c"]] == 3.0
    # the rank interval is the percentile interval of the per-resample average rank
    from scipy.stats import rankdata
    reps = {m: np.array([json.loads((tmp_path / m / f"{t}.json").read_text())["main_score"]["replicates"]
                         for t in ("t1", "t2")]) for m in "abc"}
    ranks = np.mean([rankdata(-np.stack([reps[m][k] for m in "abc"]), axis=0) for k in range(2)], axis=0)
    assert np.percentile(ranks[i["a"]], 97.5) == uncertainty.high[i["a"]]
    ahead = np.mean(ranks[0] < ranks[1]) + 0.5 * np.mean(ranks[0] == ranks[1])
    assert uncertainty.ahead[0, 1] == pytest.approx(ahead)


def test_tasks_without_replicates_keep_their_measured_rank(tmp_path):
    write_result(tmp_path, "a", "t", "survival", 0.7, main="c_index")
    write_result(tmp_path, "b", "t", "survival", 0.6, main="c_index")
    uncertainty = build_leaderboard(*load_results(tmp_path)).rank_uncertainty()
    assert uncertainty.fixed_tasks == ["t"] and uncertainty.n_resamples == 0
    assert list(uncertainty.low) == list(uncertainty.high) == [1.0, 2.0]
    assert uncertainty.tied_with("a") == ["b"]  # nothing resampled: no pair can be called separated


def test_version_1_result_files_are_still_read(tmp_path):
    """Files written before schema 2 (no per-seed values, replicates, params, environment, revisions)."""
    write_result(tmp_path, "old", "t", "tile_classification", 0.7)
    path = tmp_path / "old" / "t.json"
    result = json.loads(path.read_text())
    result["schema_version"] = 1
    path.write_text(json.dumps(result))
    [(_, loaded)], warnings = load_results(tmp_path)
    assert warnings == [] and loaded.schema_version == 1 and loaded.params == {} and loaded.environment == {}
    assert loaded.metrics["balanced_accuracy"].values is None and loaded.dataset.revision is None
    assert build_leaderboard([("old", loaded)]).score("old", "t") == 0.7


def test_suite_aggregates_only_over_models_that_scored_every_task(tmp_path):
    from harness.registry import SuiteSpec
    from harness.leaderboard.aggregate import suite_rows

    for model, scores in {"a": (0.6, 0.4), "b": (0.5, None)}.items():
        write_result(tmp_path, model, "hest-idc", "gene_expression", scores[0], main="pearson")
        if scores[1] is not None:
            write_result(tmp_path, model, "hest-prad", "gene_expression", scores[1], main="pearson")
        else:
            write_result(tmp_path, model, "hest-prad", "gene_expression", status="skipped", reason="absent",
                         main="pearson")
    board = build_leaderboard(*load_results(tmp_path))
    suites = {"hest": SuiteSpec(tasks=["hest-idc", "hest-prad"], aggregate="mean", mirrors="HEST-Bench"),
              "plain": SuiteSpec(tasks=["hest-idc"]), "untouched": SuiteSpec(tasks=["x"], aggregate="mean")}
    rows = {row["model"]: row for row in suite_rows(board, suites)}
    assert rows["a"]["hest"] == pytest.approx(0.5) and rows["a"]["hest scored"] == "2/2"
    assert rows["b"]["hest"] is None and rows["b"]["hest scored"] == "1/2"
    assert "plain" not in rows["a"] and "untouched" not in rows["a"]  # no aggregate / nothing scored


def test_a_mean_reads_a_lower_is_better_score_the_right_way_up(tmp_path):
    """A task whose main score is an error (ECE: bounded, lower is better) enters a mean as
    1 - error, so the model with the smaller error has the larger mean, as it has the better rank."""
    ece = {"ece": {"higher_is_better": False, "bounds": [0.0, 1.0], "group": "calibration"}}
    for model, accuracy, error in (("calibrated", 0.9, 0.1), ("overconfident", 0.9, 0.3)):
        write_result(tmp_path, model, "acc", "tile_classification", accuracy)
        write_result(tmp_path, model, "err", "tile_classification", error, main="ece", metric_info=ece)
    board = build_leaderboard(*load_results(tmp_path))
    assert board.mean_tasks() == ["acc", "err"]
    assert board.average_rank() == {"calibrated": 1.25, "overconfident": 1.75}
    assert board.mean("calibrated") == pytest.approx(0.9) and board.mean("overconfident") == pytest.approx(0.8)
    rows = {row["model"]: row for row in board.overview()}
    assert rows["calibrated"]["mean"] > rows["overconfident"]["mean"]
    assert rows["overconfident"]["err"] == pytest.approx(0.3)  # the cell shows the error itself


def test_borda_and_ties_match_their_pairwise_definitions_on_a_large_board(tmp_path):
    """Borda points from ranks (ascending rank with ties averaged, less one) and the tied pairs from one
    pass over the comparison matrix equal their pairwise definitions, on 40 models with tied scores,
    a lower-is-better task and paired replicates; the rank intervals are computed once per board."""
    rng = np.random.default_rng(3)
    ece = {"ece": {"higher_is_better": False, "bounds": [0.0, 1.0], "group": "calibration"}}
    models = [f"m{i:02d}" for i in range(40)]
    for model in models:
        for task in ("t1", "t2"):
            value = float(rng.choice([0.5, 0.6, 0.7]))  # many ties
            write_result(tmp_path, model, task, "tile_classification", value,
                         replicates=value + rng.normal(0, 0.03, 50))
        write_result(tmp_path, model, "err", "tile_classification", float(rng.choice([0.1, 0.2])), main="ece",
                     metric_info=ece)
    board = build_leaderboard(*load_results(tmp_path))
    sign = {"t1": 1, "t2": 1, "err": -1}
    expected = {m: sum(1.0 if sign[t] * board.score(m, t) > sign[t] * board.score(o, t) else
                       0.5 if board.score(m, t) == board.score(o, t) else 0.0
                       for t in board.common_tasks for o in models if o != m) for m in models}
    assert board.borda() == pytest.approx(expected)
    uncertainty = board.rank_uncertainty()
    assert board.rank_uncertainty() is uncertainty  # asked by the overview and the app: computed once
    pairs, total = uncertainty.tied_pairs()
    by_definition = {tuple(sorted((a, b))) for a in models for b in uncertainty.tied_with(a)}
    assert {tuple(sorted(p)) for p in pairs} == by_definition and total == len(by_definition) > 10
    first, total_again = uncertainty.tied_pairs(limit=5)
    assert first == pairs[:5] and total_again == total


def test_scores_on_different_data_are_named_in_one_line_per_task(tmp_path):
    """Two versions of one task's data (an unpinned Hub dataset read at two commits) were ranked as
    one test set without a word; the board names whose scores are on which data."""
    def dataset(fingerprint):
        return {"name": "t1", "source": "hf", "fingerprint": fingerprint}

    for model, value in {"a": 0.9, "b": 0.8, "c": 0.7}.items():
        write_result(tmp_path, model, "t1", "tile_classification", value)
        write_result(tmp_path, model, "t2", "tile_classification", value,
                     dataset=dataset("f" * 16 if model == "c" else "e" * 16))
    write_result(tmp_path, "d", "t2", "tile_classification", status="failed", reason="x", dataset=dataset("d" * 16))
    board = build_leaderboard(*load_results(tmp_path))
    assert board.warnings == [f"1 task(s) have scores computed on different versions of their data, compared as "
                              f"one; e.g. task t2: 2 versions (dataset fingerprints '{'e' * 16}': a, b; "
                              f"'{'f' * 16}': c); rescore them on one"]
    assert board.average_rank()["a"] == 1.0  # said, not dropped: which data is the task's, the board cannot tell
    # a cross-cohort task: one training cohort, its test cohort redrawn for one model
    for model, tested in (("a", "1" * 16), ("b", "1" * 16), ("c", "2" * 16)):
        write_result(tmp_path, model, "t3", "tile_classification", 0.5, dataset=dataset("e" * 16),
                     details={"test_dataset": {"name": "cohort-b", "fingerprint": tested}})
    warnings = build_leaderboard(*load_results(tmp_path)).warnings  # one line for every such task
    assert len(warnings) == 1 and warnings[0].startswith("2 task(s) have scores computed on different versions of "
                                                         "their data, compared as one (also t3); e.g. task t2")
    board = build_leaderboard(*load_results(tmp_path), board_tasks=["t3"])
    assert board.warnings == [f"1 task(s) have scores computed on different versions of their data, compared as "
                              f"one; e.g. task t3: 2 versions (dataset fingerprints '{'e' * 16}+{'1' * 16}': a, b; "
                              f"'{'e' * 16}+{'2' * 16}': c); rescore them on one"]
    write_result(tmp_path, "b", "t2", "tile_classification", 0.8, dataset=dataset("x" * 500))
    loaded, warnings = load_results(tmp_path)  # a fingerprint no run writes: the file is refused
    assert "b" not in {slug for slug, r in loaded if r.task == "t2"} and any("b/t2.json" in w for w in warnings)


def test_replicates_are_usable_exactly_when_each_is_finite_and_within_bounds():
    """The board's check of a result's bootstrap replicates (sum, min, max: C loops over millions of
    values) against its definition, one value at a time, on random lists of finite, NaN, infinite
    and out-of-bounds values."""
    import math
    import random

    from harness.evaluation import MetricInfo
    from harness.leaderboard.aggregate import _usable_replicates

    def usable(replicates, low, high) -> bool:
        return bool(replicates) and all(math.isfinite(v) and (low is None or v >= low) and (high is None or v <= high)
                                        for v in replicates)

    rng = random.Random(0)
    values = [0.0, 1.0, 0.5, -0.1, 1.1, 3, float("nan"), float("inf"), -float("inf"), 1e30, -1e30]
    for _ in range(2000):
        replicates = [rng.choice(values) for _ in range(rng.randint(0, 6))]
        for low, high in ((0.0, 1.0), (None, None), (0.0, None), (None, 1.0)):
            kept = _usable_replicates(replicates, MetricInfo(bounds=(low, high)))
            assert (kept is not None) == usable(replicates, low, high), (replicates, low, high)
