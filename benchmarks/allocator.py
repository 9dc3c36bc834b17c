"""What `harness.memory_allocator` buys: the same work under glibc's default allocator
(HARNESS_ALLOCATOR=system) and under the harness's setting, each in a fresh process, in one run.

Workloads (the two where this machine showed most time in the kernel):
  seg-oracle     `harness run --model synth-oracle --tasks synth-seg`: the segmentation decoder
                 trained on synth-oracle's fine dense form (56 x 56 cells upsampled to 224 px:
                 about 100 MB of activations per step)
  student-step   `benchmarks/student_step.py --setups fp32`: the distillation study's student step

Prints, per workload and allocator: wall, user and system seconds and peak resident memory of the
process (os.wait4), and the ratio of the default's wall time to the harness's. For seg-oracle it
checks that both give the same Dice per seed (the setting changes where memory comes from, not
the arithmetic).

Usage: python benchmarks/allocator.py [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODES = {"glibc default": "system", "harness": ""}


def measured(command: list[str], allocator: str, log: Path) -> dict:
    """Wall, user and system seconds and peak RSS (MiB) of one child process; its output in `log`."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HARNESS_ALLOCATOR=allocator)
    with open(log, "w") as out:
        started = time.perf_counter()
        child = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own resource usage
        wall = time.perf_counter() - started
    child.returncode = code = os.waitstatus_to_exitcode(status)
    if code:
        raise SystemExit(f"{' '.join(command)} exited {code}; its output: {log}")
    return {"wall": wall, "user": usage.ru_utime, "system": usage.ru_stime, "rss": usage.ru_maxrss / 1024}


def seg_dice(results: Path) -> list[float]:
    [path] = results.glob("*/synth-seg.json")
    return json.loads(path.read_text())["metrics"]["dice"]["values"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="where the cache, results and logs go (default: a temporary folder)")
    args = parser.parse_args()
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="allocator-"))
    root.mkdir(parents=True, exist_ok=True)
    cache = root / "cache"
    harness = [sys.executable, "-m", "harness.cli"]
    measured([*harness, "download", "synth-seg", "--cache-dir", str(cache)], "", root / "generate.log")
    rows, dice = [], {}
    for mode, allocator in MODES.items():
        results = root / f"results-{allocator or 'harness'}"
        shutil.rmtree(results, ignore_errors=True)
        seg = measured([*harness, "run", "--model", "synth-oracle", "--tasks", "synth-seg", "--cache-dir", str(cache),
                        "--output", str(results)], allocator, root / f"seg-{allocator or 'harness'}.log")
        dice[mode] = seg_dice(results)
        rows.append(("seg-oracle", mode, seg, ""))
        log = root / f"step-{allocator or 'harness'}.log"
        step = measured([sys.executable, str(HERE / "student_step.py"), "--setups", "fp32", "--steps", "40"],
                        allocator, log)
        rate = re.search(r"fp32\s+([0-9.]+) steps/s", log.read_text())
        rows.append(("student-step", mode, step, f"{rate.group(1)} steps/s" if rate else "?"))
    print(f"machine: {os.cpu_count()} cores; each row one fresh process")
    print(f"{'workload':13s} {'allocator':14s} {'wall s':>7s} {'user s':>7s} {'sys s':>7s} {'peak MiB':>9s}")
    for workload, mode, m, note in rows:
        print(f"{workload:13s} {mode:14s} {m['wall']:7.1f} {m['user']:7.1f} {m['system']:7.1f} {m['rss']:9.0f}  {note}")
    for workload in ("seg-oracle", "student-step"):
        default, tuned = (m for w, _, m, _ in rows if w == workload)
        print(f"{workload}: glibc default / harness wall time {default['wall'] / tuned['wall']:.2f}x, "
              f"system time {default['system']:.1f} s -> {tuned['system']:.1f} s")
    same = dice["glibc default"] == dice["harness"]
    print(f"seg-oracle Dice per seed: {dice['harness']} with the harness's allocator; "
          f"{'identical' if same else 'DIFFERENT: ' + str(dice['glibc default'])} with glibc's default")
    if not args.workdir:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
