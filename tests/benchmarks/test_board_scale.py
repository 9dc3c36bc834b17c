"""benchmarks/board_scale.py at toy size: the board it writes is read whole, and the growth exponent
is the slope of log time over log size."""

import pytest

from tests.support.benchmark_scripts import load_benchmark


def test_the_board_scale_benchmark_times_a_board_it_wrote(tmp_path):
    scale = load_benchmark("board_scale")
    scale.write_board(tmp_path / "board", n_models=6, n_tasks=3)
    assert len(list((tmp_path / "board").glob("*/*.json"))) == 18
    times = scale.time_board(tmp_path / "board")  # checks every model got a row
    assert set(times) == {"read_s", "build_s", "overview_s"} and all(t >= 0 for t in times.values())
    checks = scale.time_replicate_checks(tmp_path / "board")  # asserts the two checks agree on every result
    assert set(checks) == {"replicates_s", "replicates_by_value_s", "replicates_ratio"} and checks["replicates_ratio"] > 0
    assert scale.board_memory_mb(tmp_path / "board") > 0
    assert scale.growth([100, 400], [1.0, 16.0]) == [None, pytest.approx(2.0)]
    assert scale.growth([100, 400], [1.0, 4.0])[1] == pytest.approx(1.0)
