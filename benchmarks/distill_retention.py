"""Does a student of two partial teachers keep more than a student of either one?

Trains vit_tiny students (112 px, the distiller's defaults: 300 steps of 32, cached targets) on
`synth-distill-tiles` (1,200 tiles of another seed than the scored suite), in four arms and over
several training seeds:

  tissue     feature_kd from synth-oracle-tissue (the tissue one-hot)
  fine       feature_kd from synth-oracle-grade (cellularity, atypia, mitoses)
  multi      multi_teacher from both, equal weights
  reference  feature_kd from synth-reference, the trained network (a teacher that reads pixels)

plus the same vit_tiny untrained (lr 0, training seed 0: where the students start from), then
scores every student, the teachers, random-noise and synth-oracle on the synthetic suite,
and prints per task

  normalised retention = (student - noise) / (teacher - noise) x 100

For the three partial-oracle arms the teacher is the better of the two partial teachers on that
task, so all three arms share one denominator and the multi-teacher student is held to the best
single teacher everywhere. A task counts when that teacher closes at least a quarter of the
noise-to-oracle gap ("informs" it). The reference arm is normalised by synth-reference itself.
The headline is each arm's median over the counted tasks, per seed and as mean +- sd. A second
table gives, on the same tasks, the share of the noise-to-synth-oracle gap each student closes:
free of the partial teachers' own scores, which carry their probes' quirks (a 6-dim one-hot
teacher can score 0.8 on synth-tiles when one probe seed of five stalls).

Rerunning resumes: trained students and existing results are reused (`harness` does both).

Usage: python benchmarks/distill_retention.py --out distill-study [--seeds 0 1 2] [--steps 300]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from harness.results import ResultStore

ARMS = {
    "tissue": ("feature_kd", ["synth-oracle-tissue"]),
    "fine": ("feature_kd", ["synth-oracle-grade"]),
    "multi": ("multi_teacher", ["synth-oracle-tissue", "synth-oracle-grade"]),
    "reference": ("feature_kd", ["synth-reference"]),
}
PARTIAL = ("synth-oracle-tissue", "synth-oracle-grade")
PARTIAL_ARMS = ("tissue", "fine", "multi")
TASKS = ("synth-tiles", "synth-grade", "synth-mitosis", "synth-retrieval", "synth-vqa", "synth-slides",
         "synth-survival", "synth-report", "synth-plism", "synth-invariance")
NOISE, ORACLE = "random-noise", "synth-oracle"
UNTRAINED = "untrained-s0"  # the student architecture with lr 0: what training starts from


def harness(*args: str) -> None:
    command = [sys.executable, "-m", "harness.cli", *args]
    print("+ harness " + " ".join(args), flush=True)
    subprocess.run(command, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def train_and_score(out: Path, seeds: list[int], steps: int) -> None:
    results = out / "results"
    harness("run", "--model", ORACLE, "--model", NOISE, "--tasks", ",".join(TASKS), "--output", str(results))
    for seed in seeds:
        for arm, (method, teachers) in ARMS.items():
            student = out / "students" / f"{arm}-s{seed}"
            harness("distill", *[a for t in teachers for a in ("--teacher", t)], "--set", f"method={method}",
                    "--set", "dataset=synth-distill-tiles", "--set", f"seed={seed}", "--set", f"steps={steps}",
                    "--output", str(student), "--score", ",".join(TASKS), "--results", str(results))
    harness("distill", "--teacher", "synth-oracle-tissue", "--set", "lr=0", "--set", "steps=1", "--set", "seed=0",
            "--set", "dataset=synth-distill-tiles", "--output", str(out / "students" / UNTRAINED),
            "--score", ",".join(TASKS), "--results", str(results))


def score_table(results: Path, slugs: list[str]) -> dict[str, dict[str, float]]:
    store = ResultStore(results)
    table = {}
    for slug in slugs:
        table[slug] = {}
        for task in TASKS:
            result = store.read(store.path(slug, task))
            if result is not None and result.status == "ok":
                table[slug][task] = result.main_score.value
    return table


def normalised(student: dict, teacher: dict, noise: dict, oracle: dict) -> dict[str, float]:
    """Per counted task: (student - noise) / (teacher - noise) x 100."""
    out = {}
    for task in TASKS:
        if not all(task in d for d in (student, teacher, noise, oracle)):
            continue
        gap = teacher[task] - noise[task]
        if gap > 0 and gap >= 0.25 * (oracle[task] - noise[task]):
            out[task] = 100.0 * (student[task] - noise[task]) / gap
    return out


def report(out: Path, seeds: list[int]) -> None:
    students = [f"{arm}-s{seed}" for seed in seeds for arm in ARMS]
    table = score_table(out / "results", [NOISE, ORACLE, *PARTIAL, "synth-reference", *students, UNTRAINED])
    noise, oracle = table[NOISE], table[ORACLE]
    best_partial = {task: max(table[t][task] for t in PARTIAL) for task in TASKS
                    if all(task in table[t] for t in PARTIAL)}
    short = [t.removeprefix("synth-") for t in TASKS]
    print("\nMain scores (students: mean over seeds)\n")
    print("| model | " + " | ".join(short) + " |")
    print("| --- " * (len(TASKS) + 1) + "|")
    rows = [(name, [table[name]]) for name in (ORACLE, *PARTIAL, "synth-reference", NOISE)]
    rows += [(f"student: {arm}", [table[f"{arm}-s{seed}"] for seed in seeds]) for arm in ARMS]
    rows.append(("vit_tiny untrained (seed 0)", [table[UNTRAINED]]))
    for name, runs in rows:
        cells = []
        for task in TASKS:
            values = [r[task] for r in runs if task in r]
            cells.append(f"{np.mean(values):.3f}" if values else "-")
        print(f"| {name} | " + " | ".join(cells) + " |")

    print("\nNormalised retention (%), mean over seeds; median over the counted tasks per seed\n")
    print("| student | teacher | " + " | ".join(short) + " | median per seed | mean +- sd |")
    print("| --- " * (len(TASKS) + 4) + "|")
    medians = {}
    for arm in ARMS:
        teacher = table["synth-reference"] if arm == "reference" else best_partial
        per_seed = [normalised(table[f"{arm}-s{seed}"], teacher, noise, oracle) for seed in seeds]
        medians[arm] = [float(np.median(list(r.values()))) if r else float("nan") for r in per_seed]
        cells = []
        for task in TASKS:
            values = [r[task] for r in per_seed if task in r]
            cells.append(f"{np.mean(values):.0f}" if values else "-")
        label = "synth-reference" if arm == "reference" else "best partial"
        print(f"| {arm} | {label} | " + " | ".join(cells) + " | "
              + ", ".join(f"{m:.0f}" for m in medians[arm])
              + f" | {np.mean(medians[arm]):.0f} +- {np.std(medians[arm], ddof=1) if len(seeds) > 1 else 0:.0f} |")
    multi = np.array(medians["multi"])
    for single in ("tissue", "fine"):
        wins = int(np.sum(multi > np.array(medians[single])))
        print(f"multi > {single}: in {wins} of {len(seeds)} seeds "
              f"(mean {np.mean(multi):.0f} vs {np.mean(medians[single]):.0f})")

    # the same students against the full oracle: the share of the noise-to-oracle gap they close on
    # the same counted tasks (free of the partial teachers' own probe results)
    print("\nShare of the noise-to-oracle gap closed (%), on the tasks counted above\n")
    print("| student | " + " | ".join(short) + " | median per seed |")
    print("| --- " * (len(TASKS) + 2) + "|")
    for arm in ARMS:
        teacher = table["synth-reference"] if arm == "reference" else best_partial
        per_seed = []
        for seed in seeds:
            counted = normalised(table[f"{arm}-s{seed}"], teacher, noise, oracle)
            per_seed.append({t: v for t, v in normalised(table[f"{arm}-s{seed}"], oracle, noise, oracle).items()
                             if t in counted})
        cells = [f"{np.mean([r[t] for r in per_seed if t in r]):.0f}" if any(t in r for r in per_seed) else "-"
                 for t in TASKS]
        print(f"| {arm} | " + " | ".join(cells) + " | "
              + ", ".join(f"{np.median(list(r.values())):.0f}" for r in per_seed) + " |")
    counted = set().union(*(normalised(table[f"{arm}-s{s}"], best_partial, noise, oracle) for arm in PARTIAL_ARMS
                            for s in seeds))
    closed = {t: v for t, v in normalised(table[UNTRAINED], oracle, noise, oracle).items() if t in counted}
    print("| untrained (seed 0) | " + " | ".join(f"{closed[t]:.0f}" if t in closed else "-" for t in TASKS)
          + f" | {np.median(list(closed.values())):.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--report-only", action="store_true", help="print the tables from what is there")
    args = parser.parse_args()
    if not args.report_only:
        train_and_score(args.out, args.seeds, args.steps)
    report(args.out, args.seeds)


if __name__ == "__main__":
    main()
