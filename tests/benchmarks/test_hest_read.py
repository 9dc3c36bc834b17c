"""benchmarks/hest_read.py at toy size: the `hest` source's reader and a whole-matrix reader (the
source's before) build the same table from every layout of X, and the listed genes read alone are
those columns of it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.benchmark_scripts import BENCHMARKS

pytest.importorskip("h5py", reason="the hest extra: pip install 'pathology-harness[hest]'")


@pytest.mark.parametrize("layout", ["csr", "csc", "dense"])
def test_both_readers_build_the_same_table(layout):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "hest_read.py"), "--samples", "3", "--spots", "40",
                           "--genes", "60", "--density", "0.3", "--layout", layout],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "table [120, 60]" in done.stdout and "tables equal: True" in done.stdout
    assert "table [120, 50]" in done.stdout and done.stdout.rstrip().endswith("equal to those columns: True)")
