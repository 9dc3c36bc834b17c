"""benchmarks/checkpoint_rerun.py at toy size: both ways reuse the result, the ratio is printed, and
no rerun imports torch."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support.benchmark_scripts import BENCHMARKS


def test_a_rerun_is_timed_with_and_without_the_digest_cache(tmp_path):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "checkpoint_rerun.py"), "--architecture",
                           "vit_tiny_patch16_224", "--workdir", str(tmp_path), "--repeats", "1"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"^ratio +[0-9.]+ +\(hashed / cached\)$", done.stdout, re.MULTILINE)
    assert "imported by a rerun: False" in done.stdout
    assert len(list((tmp_path / "cache" / "weights-sha256").iterdir())) == 1
