"""benchmarks/checkpoint_load.py at toy size: every way of loading gives the same weights, and the
script prints each way's seconds and peak memory and the ratio."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support.benchmark_scripts import BENCHMARKS


def test_every_way_of_loading_gives_the_same_weights(tmp_path):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "checkpoint_load.py"), "--architecture",
                           "vit_tiny_patch16_224", "--workdir", str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "same weights every way: yes (5,524,416 parameters)" in done.stdout
    ways = re.findall(r"^(torch file, mapped \(harness\)|torch file, read whole|safetensors \(harness\)) +[0-9.]+ s "
                      r"+peak +[0-9,]+ MB", done.stdout, re.MULTILINE)
    assert len(ways) == 3 and re.search(r"^torch file: peak read whole / mapped [0-9.]+$", done.stdout, re.MULTILINE)
