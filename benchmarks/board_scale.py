"""How the leaderboard's aggregation grows with the number of models on the board.

A board pulls up to 200,000 result files from the Hub (about 4,000 models at 50 tasks), and the
app aggregates them on every refresh: ranks, Borda points, bootstrap rank intervals, means. This
script writes result files for N models x T tasks (random scores, 100 paired bootstrap replicates
each, as `harness run` writes them), then times, at each N: reading the files, building the board,
and its overview (every row the app's first table shows: ranks, the bootstrap intervals, Borda
points, means). With --app, also the whole app page (leaderboard/app.py run by Streamlit's AppTest
on the folder): its first load, and a click after it (every click runs the script again; the
files are then not read again). It prints the seconds per N and the growth exponent between
consecutive sizes (log of the time ratio / log of the size ratio: 1 is linear, 2 quadratic),
measured in one run. Also, at each N, in the same run: the seconds to check every result's bootstrap
replicates as the board does (sum, min, max) against the definition one value at a time (the board's
way before), and their ratio; with --app, a click's cost as a share of a load's; with --memory, the
megabytes a built board holds (what each board the app keeps costs).

At 1,000 models x 15 tasks the overview took 18.8 s and the app's page 49.8 s when the rank
intervals recomputed every model's average rank once per model and the table set its texts a
cell at a time; docs/benchmarks.md has the numbers before and after.

Usage: python benchmarks/board_scale.py [--models 250 1000 4000] [--tasks 15] [--app] [--memory] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np

REPLICATES = 100


def write_board(root: Path, n_models: int, n_tasks: int, seed: int = 0) -> None:
    """Result files root/<model>/<task>.json, one per model and task, all status ok."""
    rng = np.random.default_rng(seed)
    for m in range(n_models):
        folder = root / f"lab--m{m:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        for t in range(n_tasks):
            value = float(rng.uniform(0.3, 0.9))
            replicates = np.clip(value + rng.normal(0, 0.02, REPLICATES), 0, 1).round(6).tolist()
            result = {
                "task": f"scale-t{t:02d}", "task_version": 1, "family": "tile_classification", "status": "ok",
                "model": {"name": f"lab/m{m:05d}", "weights": "checkpoint", "weights_sha256": "0" * 64,
                          "n_parameters": 1000 + m, "embed_dim": 8},
                "dataset": {"name": f"scale-t{t:02d}", "source": "synth", "fingerprint": f"fp-{t}"},
                "main_score": {"name": "balanced_accuracy", "value": value, "replicates": replicates},
                "metrics": {"balanced_accuracy": {"mean": value, "std": 0.0, "ci95": [value - 0.01, value + 0.01]}},
                "timings": {"embed_s": 1.0, "eval_s": 1.0, "items_per_s": 10.0},
            }
            (folder / f"scale-t{t:02d}.json").write_text(json.dumps(result))


def time_board(root: Path) -> dict[str, float]:
    """Seconds to read the files, build the board, and compute its overview (as the app does)."""
    from harness.leaderboard.aggregate import build_leaderboard, load_results

    started = time.perf_counter()
    results, warnings = load_results(root)
    read = time.perf_counter()
    board = build_leaderboard(results, warnings)
    built = time.perf_counter()
    rows = board.overview()
    done = time.perf_counter()
    assert len(rows) == len({slug for slug, _ in results})
    return {"read_s": read - started, "build_s": built - read, "overview_s": done - built}


def time_replicate_checks(root: Path) -> dict[str, float]:
    """Seconds to check every result's bootstrap replicates (finite, within the score's bounds) as the
    board does (`_usable_replicates`: sum, min, max) and by the definition, one value at a time (how
    the board did it before), on the same files, and the ratio; the two must agree on every result."""
    import math

    from harness.evaluation import MetricInfo
    from harness.leaderboard.aggregate import _usable_replicates, load_results

    lists = [r.main_score.replicates for _, r in load_results(root)[0] if r.main_score.replicates]
    info = MetricInfo(bounds=(0.0, 1.0))
    started = time.perf_counter()
    board = [_usable_replicates(values, info) is not None for values in lists]
    checked = time.perf_counter()
    defined = [all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values) for values in lists]
    done = time.perf_counter()
    assert board == defined
    return {"replicates_s": checked - started, "replicates_by_value_s": done - checked,
            "replicates_ratio": (checked - started) / max(done - checked, 1e-9)}


def board_memory_mb(root: Path) -> float:
    """Megabytes a built board holds with what the app keeps of it (overview, cell texts, rank
    intervals, the valid results), by tracemalloc: what each board the app caches costs."""
    import tracemalloc

    from harness.leaderboard.aggregate import build_leaderboard, load_results

    results, warnings = load_results(root)
    tracemalloc.start()
    board = build_leaderboard(results, warnings)
    kept = (board, board.valid(results), board.overview(), board.cell_labels(), board.rank_uncertainty())
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    return held / 1e6


def time_app(root: Path) -> dict[str, float]:
    """Seconds for the app's page on the results folder `root` (AppTest, no browser): its first load,
    then a click (the script run again)."""
    import os
    from importlib.resources import files

    from streamlit.testing.v1 import AppTest

    os.environ["HARNESS_RESULTS"] = str(root)
    app = AppTest.from_file(str(files("harness.leaderboard").joinpath("app.py")), default_timeout=3600)
    seconds = {}
    for name in ("app_load_s", "app_click_s"):
        started = time.perf_counter()
        app.run()
        seconds[name] = time.perf_counter() - started
        if app.exception:
            raise SystemExit(f"the app failed on {root}: {app.exception[0].message[:300]}")
    seconds["click_per_load"] = seconds["app_click_s"] / seconds["app_load_s"]  # what a click costs of a load
    return seconds


def growth(sizes: list[int], seconds: list[float]) -> list[float | None]:
    """The exponent k of seconds ~ size^k between each size and the one before (None for the first)."""
    out: list[float | None] = [None]
    for (n0, t0), (n1, t1) in zip(zip(sizes, seconds), zip(sizes[1:], seconds[1:])):
        out.append(math.log(t1 / t0) / math.log(n1 / n0) if t0 > 0 and t1 > 0 else None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, nargs="+", default=[250, 1000, 4000])
    parser.add_argument("--tasks", type=int, default=15)
    parser.add_argument("--app", action="store_true", help="also time the app's whole first page")
    parser.add_argument("--memory", action="store_true", help="also measure what a built board holds (tracemalloc)")
    parser.add_argument("--workdir", type=Path, help="where the result files go (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        base = args.workdir or Path(scratch)
        rows = []
        if args.app:  # the first run of the app imports Streamlit, altair, ...: on a board of its own, not timed
            write_board(Path(scratch) / "warm-up", 2, 1)
            time_app(Path(scratch) / "warm-up")
        for n in sorted(args.models):
            root = base / f"board-{n}x{args.tasks}"
            if not root.exists():
                write_board(root, n, args.tasks)
            times = time_board(root) | time_replicate_checks(root) | (time_app(root) if args.app else {})
            rows.append((n, times | ({"board_mb": board_memory_mb(root)} if args.memory else {})))
            print(f"{n:>6} models x {args.tasks} tasks: " + ", ".join(f"{k} {v:.2f}" for k, v in rows[-1][1].items()),
                  flush=True)
    sizes = [n for n, _ in rows]
    print("\ngrowth exponent between consecutive sizes (1 linear, 2 quadratic):")
    for key in (k for k in rows[0][1] if k.endswith("_s")):  # times grow; ratios and sizes are read as they are
        exponents = growth(sizes, [times[key] for _, times in rows])
        print(f"  {key:<11} " + "  ".join(f"{n}: {'-' if k is None else f'{k:.2f}'}" for n, k in zip(sizes, exponents)))


if __name__ == "__main__":
    main()
