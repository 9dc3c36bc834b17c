"""Aggregation on hand-made result files: ranks, Borda, means, and explicit partial coverage."""

import json
from pathlib import Path

import numpy as np
import pytest

from leaderboard.aggregate import build_leaderboard, load_results


def write_result(root: Path, model: str, task: str, family: str, value=None, status="ok", main="balanced_accuracy",
                 reason=None, params=1000):
    result = {
        "task": task, "task_version": 1, "family": family, "status": status, "reason": reason,
        "model": {"name": model, "weights": "checkpoint", "weights_sha256": "0" * 64, "n_parameters": params,
                  "embed_dim": 8},
        "dataset": {"name": task, "source": "synth"},
        "main_score": {"name": main, "value": value},
        "metrics": {main: {"mean": value, "std": 0.0, "ci95": [value - 0.01, value + 0.01]}} if value is not None else {},
        "timings": {"embed_s": 1.0, "eval_s": 1.0, "items_per_s": 10.0},
    }
    (root / model).mkdir(parents=True, exist_ok=True)
    (root / model / f"{task}.json").write_text(json.dumps(result))


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
    assert [row["model"] for row in board.overview()][0] == "a"
    assert rows["c"]["t2"] == "failed: disk full"
    assert rows["c"]["t3"] == "missing: not run for this model"
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
    assert board.tasks == ["real", "t"] and board.common_tasks == ["t"]
    assert row["real"] == "skipped: no data here" and row["coverage"] == "1/2 (1 skipped)"
    assert row["mean"] == 0.5
