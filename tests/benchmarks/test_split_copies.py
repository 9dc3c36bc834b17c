"""benchmarks/split_copies.py at toy size: in both formats (every file one size; sizes that differ)
the check finds exactly the copies the script planted, in folders and counted in a Hub dataset's table."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support.benchmark_scripts import BENCHMARKS


def test_the_check_finds_the_planted_copies_in_both_formats():
    done = subprocess.run([sys.executable, str(BENCHMARKS / "split_copies.py"), "--tiles", "60", "--size", "32",
                           "--copies", "4"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.findall(r"^(bmp|png) .* copies found (\d+) \(of 4\)$", done.stdout, re.MULTILINE)
    assert found == [("bmp", "4"), ("png", "4")]
    counted = re.findall(r"^(bmp|png)  as a Hub dataset: .* copies counted (\d+) \(of 4\)$", done.stdout, re.MULTILINE)
    assert counted == [("bmp", "4"), ("png", "4")]
