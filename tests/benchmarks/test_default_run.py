"""benchmarks/default_run.py's machine-speed probe: the two numbers that tell a slower machine from
a slower harness, measured in a process of its own."""

import math

from tests.support.benchmark_scripts import load_benchmark


def test_the_speed_probe_measures_the_forward_and_the_filter_in_a_fresh_process():
    speed = load_benchmark("default_run").machine_speed(seconds=0.3)
    assert set(speed) == {"forward_img_s", "filter_mpx_s"}
    assert all(math.isfinite(v) and v > 0 for v in speed.values()), speed
