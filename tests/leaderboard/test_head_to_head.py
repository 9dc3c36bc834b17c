"""Head to head: per task, win / tie / loss from the paired bootstrap replicates the results keep,
consistent with those replicates; tasks without paired replicates count neither way."""

import numpy as np
import pytest

from harness.leaderboard.aggregate import build_leaderboard, load_results
from harness.leaderboard.head_to_head import head_to_head, paired_difference
from tests.support.result_files import write_result


@pytest.fixture
def board(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.normal(0.0, 0.01, 1000)  # the shared resample noise: replicates are paired
    # a beats b clearly on t1, they tie on t2, b beats a on t3; t4 has no replicates
    for slug, shifts in {"a": (0.80, 0.70, 0.50), "b": (0.70, 0.701, 0.60)}.items():
        for task, centre in zip(("t1", "t2", "t3"), shifts):
            noise = base + rng.normal(0.0, 0.002, 1000)
            write_result(tmp_path, slug, task, "tile_classification", value=centre, replicates=centre + noise)
        write_result(tmp_path, slug, "t4", "tile_classification", value=0.5 if slug == "a" else 0.4)
    write_result(tmp_path, "c", "t1", "tile_classification", value=0.1, replicates=0.1 + base)
    results, warnings = load_results(tmp_path)
    return build_leaderboard(results, warnings)


def test_verdicts_follow_the_paired_replicates(board):
    rows = {row["task"]: row for row in head_to_head(board, ["a", "b"])}
    assert rows["t1"]["a vs b"].startswith("win +0.100")
    assert rows["t2"]["a vs b"].startswith("tie")
    assert rows["t3"]["a vs b"].startswith("loss -0.100")
    assert rows["t4"]["a vs b"] == "not paired +0.100"  # no replicates: the point difference, no verdict
    assert rows["wins / ties / losses"]["a vs b"] == "1 / 1 / 1"


def test_the_interval_is_the_percentile_interval_of_the_difference(board):
    point, (low, high) = paired_difference(board, "a", "b", "t2")
    a, b = board.cells[("a", "t2")].replicates, board.cells[("b", "t2")].replicates
    assert (low, high) == pytest.approx(tuple(np.percentile(a - b, [2.5, 97.5])))
    assert low < 0 < high and point == pytest.approx(-0.001)


def test_lower_is_better_flips_the_sign(tmp_path):
    for slug, centre in (("a", 0.2), ("b", 0.4)):
        write_result(tmp_path, slug, "drop", "stain_robustness", value=centre, main="cross_domain_drop",
                     replicates=centre + np.zeros(100), metric_info={"cross_domain_drop": {
                         "higher_is_better": False, "bounds": [0.0, 1.0], "group": "robustness"}})
    board = build_leaderboard(*load_results(tmp_path))
    assert head_to_head(board, ["a", "b"])[0]["a vs b"].startswith("win +0.200")


def test_missing_scores_and_model_counts(board):
    rows = head_to_head(board, ["a", "b", "c"])
    assert {"a vs b", "a vs c", "b vs c"} <= set(rows[0])
    assert rows[0]["task"] == "t1" and rows[0]["a vs c"].startswith("win")
    by_task = {row["task"]: row for row in rows}
    assert by_task["t2"]["a vs c"] is None  # c did not score t2
    with pytest.raises(ValueError, match="2 to 5 models"):
        head_to_head(board, ["a"])


def test_replicates_a_score_could_not_take_decide_nothing(tmp_path):
    """A hand-edited file with replicates of 1e30 (or NaN) for a score in [0, 1]: the pair is
    not paired (point difference only), not a 'loss' decided by the absurd numbers."""
    info = {"balanced_accuracy": {"higher_is_better": True, "bounds": [0.0, 1.0], "group": "score"}}
    write_result(tmp_path, "a", "t1", "tile_classification", 0.9, replicates=[0.9] * 50, metric_info=info)
    write_result(tmp_path, "b", "t1", "tile_classification", 0.8, replicates=[1e30] * 50, metric_info=info)
    write_result(tmp_path, "a", "t2", "tile_classification", 0.7, replicates=[float("nan")] * 50, metric_info=info)
    write_result(tmp_path, "b", "t2", "tile_classification", 0.6, replicates=[0.6] * 50, metric_info=info)
    board = build_leaderboard(*load_results(tmp_path))
    rows = {row["task"]: row["a vs b"] for row in head_to_head(board, ["a", "b"])}
    assert rows == {"t1": "not paired +0.100", "t2": "not paired +0.100", "wins / ties / losses": "0 / 0 / 0"}
