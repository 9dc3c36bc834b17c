"""The test suite's wall and CPU time, spread over the cores (pyproject's `-n auto --dist loadgroup`)
against one process (`-n 0`), measured back to back in one run of this script.

Each run is a fresh `python -m pytest -q -p no:cacheprovider` with the environment this script
was given: run it after the README's first command with the same HARNESS_CACHE (as `.ci/run`
does), and with CI_README_RUN_DIR / CI_README_RUN_LOG naming that run if the README-run test is to
read it rather than run the command again in each of the two runs.

Prints, for each: wall time, CPU time (user + system of pytest and every process it waited for),
the pytest summary line; then the ratios one process / spread.

Usage: python benchmarks/suite_time.py [-- extra pytest arguments]
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(extra: list[str]) -> tuple[float, float, str]:
    """(wall s, CPU s, pytest's last line)"""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra], cwd=ROOT,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"), capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = done.stdout.strip().splitlines()
    return wall, cpu, lines[-1] if lines else f"(no output; exit {done.returncode})"


def main() -> None:
    extra = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    runs = {}
    for name, flags in (("spread (-n auto)", []), ("one process (-n 0)", ["-n", "0"])):
        runs[name] = timed(flags + extra)
        wall, cpu, summary = runs[name]
        print(f"{name:20s} wall {wall:7.1f} s   CPU {cpu:7.1f} s   {summary}", flush=True)
    (spread_wall, spread_cpu, _), (one_wall, one_cpu, _) = runs.values()
    print(f"one process / spread: wall {one_wall / spread_wall:.2f}x, CPU {one_cpu / spread_cpu:.2f}x "
          f"({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
