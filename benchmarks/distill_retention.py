"""The distillation study: do small students of network teachers keep what the teachers know?

Two teachers that know different things (harness/synth/teacher_training.py; 1.6M parameters each):
`synth-teacher-tissue` (six tissues, read at 112 px) and `synth-teacher-nuclei` (nuclear grade and
mitoses of tumour tiles, at 224 px). Students: a 92k-parameter ConvNeXt (timm convnext_atto with
depths 1-1-1-1 and dims 16-32-48-64, under 6% of either teacher) reading 224 px, trained from
scratch on `synth-distill-mixed` (1,800 tiles of another seed than the scored suite, 800 of them
tumour) with cached teacher targets, PHI-S standardised per teacher, an adaptor head per teacher
(and per nested dim) and Matryoshka nesting at 8, 16 and 32 of the 64 dims, in three arms that
differ only in their teachers:

  tissue        feature_kd from synth-teacher-tissue
  nuclei        feature_kd from synth-teacher-nuclei
  multi         multi_teacher from both (equal weights; PHI-S puts both targets at unit variance)
  multi-jitter  multi, the student's view jittered in stain (HED-strong, 0.2), tone curve (gamma
                within 1/1.25..1.25) and focus (blur up to 1 px) while the targets stay the clean
                tile's (distillers/view_jitter.py): the set-up of the robustness claim

over several training seeds, plus the same student untrained (lr 0). Every model is scored on the
synthetic suite; the multi-teacher students also at their first 8 dims (1/8, `--dims 8`). Then, per claim of the
work the distillers come from, the per-seed numbers, a paired comparison and a verdict line:

  compression   the best student keeps >= 95% median normalised retention of its teacher
                (H0-mini, Pathryoshka), at the parameter ratio printed
  multi-teacher the multi-teacher student beats each single-teacher student on the median over the
                tasks the teachers inform (Pathryoshka)
  Matryoshka    at 1/8 of its dims a student keeps >= 90% of its full-dim score
  robustness    a student is at least as robust as its teacher(s) on synth-plism (H0-mini), and
                at what cost elsewhere; judged on multi-jitter, with its paired difference from
                multi (the same student, seeds and steps, without the jitter)

normalised retention = (student - noise) / (teacher - noise) x 100 on the tasks the teacher
informs (it closes at least a quarter of the noise-to-synth-oracle gap); for the multi-teacher
student, and in the multi-teacher comparison for the three arms compared, the teacher of a task is the
better of the two there. Verdicts: "holds" when the 95% t-interval of the mean over seeds clears
the bar (for a comparison: excludes 0 on the right side), "not shown" when only the mean does,
"does not hold" when the mean does not.

Rerunning resumes: trained students and existing results are reused (`harness` does both).

Usage: python benchmarks/distill_retention.py --out distill-study [--seeds 0 1 2] [--steps 1600] [--lr 5e-3]

1,600 steps by default: the longest training whose whole study (four arms, three seeds) fits the
90 minutes it is meant to take on 2 CPU cores, with room for this machine's speed to vary; the
training and held-out losses are printed with how much each still fell over the last quarter.
They have not flattened there: `benchmarks/distill_lr.py --steps 1600 3200 ...` trains the same
students longer, one seed each (docs/distillation-study.md: "How far from flat").
Peak learning rate 5e-3 (AdamW, warm-up then cosine to zero): on the nuclear arm's seed 0 at 1,600
steps it ended at a held-out loss of 0.239, against 0.310 at 2e-3 (the earlier default) and 0.288
at 1e-2; the tissue arm's was 0.042 at 5e-3 (docs/distillation-study.md: the peak learning rate).

`--arms tissue` trains and scores only that arm (for example a longer run of the best student);
claims 2 and 3 need the tissue, nuclei and multi arms and are otherwise reported as not measured.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from harness.results import ResultStore

TEACHERS = {"tissue": "synth-teacher-tissue", "nuclei": "synth-teacher-nuclei"}
JITTER = {"stain": 0.2, "gamma": 0.25, "blur": 1.0}  # HED-strong; the synthetic scanners' tone and focus range
ARMS = {  # method, teachers, settings of its own
    "tissue": ("feature_kd", ["synth-teacher-tissue"], {}),
    "nuclei": ("feature_kd", ["synth-teacher-nuclei"], {}),
    "multi": ("multi_teacher", ["synth-teacher-tissue", "synth-teacher-nuclei"], {}),
    "multi-jitter": ("multi_teacher", ["synth-teacher-tissue", "synth-teacher-nuclei"], {"jitter": JITTER}),
}
COMPARED = ("tissue", "nuclei", "multi")  # the arms of the multi-teacher claim (claim 2)
STUDENT = "convnext_atto"
STUDENT_KWARGS = {"depths": [1, 1, 1, 1], "dims": [16, 32, 48, 64]}
STUDENT_INPUT = 224
MATRYOSHKA = [8, 16, 32]
EIGHTH = 8  # 1/8 of the student's 64 dims
NESTED_SCORED = ("multi",)  # every arm trains nested dims; the Matryoshka claim scores the multi-teacher student's
TASKS = ("synth-tiles", "synth-grade", "synth-mitosis", "synth-retrieval", "synth-vqa", "synth-slides",
         "synth-survival", "synth-report", "synth-st", "synth-plism", "synth-invariance")
BRACKET_TASKS = (*TASKS, "synth-seg")  # what each teacher knows: every synthetic task
ROBUSTNESS_TASK = "synth-plism"
NOISE, ORACLE = "random-noise", "synth-oracle"
UNTRAINED = "untrained-s0"  # the student architecture with lr 0: what training starts from
INFORMS = 0.25  # a teacher informs a task when it closes this share of the noise-to-oracle gap


# --- running ---------------------------------------------------------------------------------
@dataclass
class Study:
    out: Path
    seeds: list[int]
    steps: int
    tasks: tuple[str, ...] = TASKS
    bracket_tasks: tuple[str, ...] = BRACKET_TASKS
    dataset: str = "synth-distill-mixed"
    lr: float = 5e-3
    robustness_task: str = ROBUSTNESS_TASK
    extra: tuple[str, ...] = ()  # --include / --cache-dir passed to every harness call
    arms: tuple[str, ...] = tuple(ARMS)  # a subset trains and scores only those (claims needing others: not measured)

    @property
    def results(self) -> Path:
        return self.out / "results"

    def student(self, arm: str, seed: int) -> str:
        return f"{arm}-s{seed}"


def harness(study: Study, *args: str) -> None:
    """One `harness` command, in this process (the CLI's own entry point; a failure stops the study)."""
    from harness.cli import main

    print("+ harness " + " ".join(args), flush=True)
    code = main([*args, *study.extra])
    if code != 0:
        raise SystemExit(f"harness {args[0]} failed (exit {code}); fix it and rerun: finished work is kept")


def distill_args(study: Study, method: str, teachers: list[str], seed: int, steps: int, lr: float,
                 own: dict | None = None) -> list[str]:
    settings = {**{key: json.dumps(value) for key, value in (own or {}).items()},  # the arm's own (jitter)
                "method": method, "dataset": study.dataset, "seed": seed, "steps": steps, "lr": lr,
                "student": STUDENT, "student_kwargs": json.dumps(STUDENT_KWARGS), "student_input_size": STUDENT_INPUT,
                "matryoshka_dims": json.dumps(MATRYOSHKA), "warmup_steps": min(100, max(1, steps // 10)),
                "checkpoint_every": max(1, min(100, steps // 10))}
    return [*(a for t in teachers for a in ("--teacher", t)), *(a for k, v in settings.items() for a in ("--set", f"{k}={v}"))]


def train_and_score(study: Study) -> None:
    harness(study, "run", "--model", ORACLE, "--model", NOISE, *(a for t in TEACHERS.values() for a in ("--model", t)),
            "--tasks", ",".join(study.bracket_tasks), "--output", str(study.results))
    for seed in study.seeds:
        for arm in study.arms:
            method, teachers, own = ARMS[arm]
            folder = study.out / "students" / study.student(arm, seed)
            if not finished(study, folder):
                harness(study, "distill", *distill_args(study, method, teachers, seed, study.steps, study.lr, own),
                        "--output", str(folder), "--score", ",".join(study.tasks), "--results", str(study.results))
            if arm in NESTED_SCORED:
                harness(study, "run", "--model", str(folder), "--dims", str(EIGHTH), "--tasks", ",".join(study.tasks),
                        "--output", str(study.results))
    folder = study.out / "students" / UNTRAINED
    if not finished(study, folder):
        harness(study, "distill", *distill_args(study, "feature_kd", [TEACHERS["tissue"]], 0, 1, 0.0),
                "--output", str(folder), "--score", ",".join(study.tasks), "--results", str(study.results))


def finished(study: Study, folder: Path) -> bool:
    """A student already trained and scored against its teachers (a rerun skips it; a student whose
    training or scoring was cut short is resumed by `harness distill` from its checkpoint)."""
    return (folder / "model.safetensors").exists() and (study.results / folder.name / "distillation.json").exists()


# --- reading ---------------------------------------------------------------------------------
def score_table(results: Path, slugs: list[str], tasks: tuple[str, ...]) -> dict[str, dict[str, float]]:
    store = ResultStore(results)
    table = {}
    for slug in slugs:
        table[slug] = {}
        for task in tasks:
            result = store.read(store.path(slug, task))
            if result is not None and result.status == "ok":
                table[slug][task] = result.main_score.value
    return table


def parameter_counts() -> dict[str, int]:
    """Parameters of each teacher (its shipped checkpoint) and of the student (built, untrained)."""
    import timm

    from harness.models.loading import LoadOptions, load_encoder

    counts = {name: load_encoder(name, LoadOptions()).info.n_parameters for name in TEACHERS.values()}
    student = timm.create_model(STUDENT, pretrained=False, num_classes=0, **STUDENT_KWARGS)
    counts["student"] = sum(p.numel() for p in student.parameters())
    return counts


# --- the arithmetic of the claims --------------------------------------------------------------
def informed(teacher: dict, noise: dict, oracle: dict, tasks) -> list[str]:
    """Tasks the teacher informs: it closes at least INFORMS of the noise-to-oracle gap."""
    return [t for t in tasks if all(t in d for d in (teacher, noise, oracle))
            and teacher[t] - noise[t] > 0 and teacher[t] - noise[t] >= INFORMS * (oracle[t] - noise[t])]


def retention(student: dict, teacher: dict, noise: dict, tasks: list[str]) -> dict[str, float]:
    """(student - noise) / (teacher - noise) x 100 on `tasks` (those the student has a score on)."""
    return {t: 100.0 * (student[t] - noise[t]) / (teacher[t] - noise[t]) for t in tasks if t in student}


def median(values: dict[str, float]) -> float:
    return float(np.median(list(values.values()))) if values else float("nan")


@dataclass
class Interval:
    mean: float
    low: float
    high: float
    n: int

    def text(self, digits: int = 1) -> str:
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def t_interval(values) -> Interval:
    """Mean and 95% Student-t interval over seeds (zero width with one seed: nothing to say)."""
    values = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if len(values) == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    mean = float(values.mean())
    if len(values) < 2:
        return Interval(mean, float("-inf"), float("inf"), 1)
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return Interval(mean, mean - half, mean + half, len(values))


def verdict(interval: Interval, bar: float) -> str:
    """'holds' when the 95% interval clears the bar, 'not shown' when only the mean does."""
    if not np.isfinite(interval.mean):
        return "not measured"
    if interval.low >= bar:
        return "holds"
    return "not shown (the mean clears the bar, the 95% interval does not)" if interval.mean >= bar else "does not hold"


def comparison_verdict(difference: Interval) -> str:
    """For 'A beats B' on paired differences A - B: 'holds' when the 95% interval is above 0."""
    if not np.isfinite(difference.mean):
        return "not measured"
    if difference.low > 0:
        return "holds"
    return "not shown (ahead on the mean, the 95% interval reaches 0)" if difference.mean > 0 else "does not hold"


def best_teacher(table: dict, names) -> dict[str, float]:
    """Per task, the better teacher's score (the multi-teacher student's denominator)."""
    tasks = set.intersection(*(set(table[n]) for n in names))
    return {t: max(table[n][t] for n in names) for t in tasks}


# --- printing ----------------------------------------------------------------------------------
def short(task: str) -> str:
    return task.removeprefix("synth-")


def print_table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("| --- " * len(header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


def seeds_text(values, digits: int = 0) -> str:
    return " / ".join(f"{v:.{digits}f}" for v in values)


def report(study: Study) -> dict:
    """Print every table and verdict; return them (the toy test reads the dict)."""
    seeds, tasks = study.seeds, study.tasks
    arms = [arm for arm in ARMS if arm in study.arms]
    nested_arms = [arm for arm in NESTED_SCORED if arm in arms]
    students = [study.student(arm, s) for s in seeds for arm in arms]
    eighths = [f"{study.student(arm, s)}-d{EIGHTH}" for s in seeds for arm in nested_arms]
    table = score_table(study.results, [NOISE, ORACLE, *TEACHERS.values(), *students, *eighths, UNTRAINED],
                        tuple(dict.fromkeys((*study.bracket_tasks, *tasks))))
    noise, oracle = table[NOISE], table[ORACLE]
    out: dict = {"verdicts": {}}

    counts = parameter_counts()
    print("\nParameters\n")
    print_table(["model", "parameters", "student share"],
                [[name, f"{n:,}", f"{100 * counts['student'] / n:.1f}%"] for name, n in counts.items()
                 if name != "student"] + [[f"student ({STUDENT}, dims {STUDENT_KWARGS['dims']})",
                                           f"{counts['student']:,}", "-"]])
    out["parameters"] = counts

    print("What each teacher knows: main score, and the share of the noise-to-oracle gap it closes (%)\n")
    rows = []
    for name in (ORACLE, *TEACHERS.values(), NOISE):
        cells = []
        for task in study.bracket_tasks:
            if task not in table[name]:
                cells.append("-")
                continue
            gap = oracle.get(task, np.nan) - noise.get(task, np.nan)
            share = 100 * (table[name][task] - noise[task]) / gap if gap > 0 else np.nan
            cells.append(f"{table[name][task]:.3f}" + (f" ({share:.0f})" if name in TEACHERS.values() else ""))
        rows.append([name, *cells])
    print_table(["model", *map(short, study.bracket_tasks)], rows)

    print("Main scores (students: mean over seeds; at 8 dims below each)\n")
    rows = []
    for arm in arms:
        for suffix, label in (("", arm), (f"-d{EIGHTH}", f"{arm} @ {EIGHTH} dims"))[:2 if arm in NESTED_SCORED else 1]:
            runs = [table[study.student(arm, s) + suffix] for s in seeds]
            rows.append([f"student: {label}", *[f"{np.mean([r[t] for r in runs if t in r]):.3f}"
                                                if any(t in r for r in runs) else "-" for t in tasks]])
    rows.append(["student untrained (lr 0)", *[f"{table[UNTRAINED][t]:.3f}" if t in table[UNTRAINED] else "-"
                                               for t in tasks]])
    print_table(["model", *map(short, tasks)], rows)

    out["last_quarter_drop"] = print_loss_curves(study)  # % per arm: loss_curve, held_out_curve

    # compression: each arm against its own teacher (multi: the better teacher per task)
    both = best_teacher(table, TEACHERS.values())
    teacher_of = {"tissue": table[TEACHERS["tissue"]], "nuclei": table[TEACHERS["nuclei"]], "multi": both,
                  "multi-jitter": both}
    print("Claim 1, compression: median normalised retention of its teacher (%), on the tasks it informs\n")
    medians = {}
    rows = []
    for arm in arms:
        counted = informed(teacher_of[arm], noise, oracle, tasks)
        per_seed = [retention(table[study.student(arm, s)], teacher_of[arm], noise, counted) for s in seeds]
        medians[arm] = [median(r) for r in per_seed]
        rows.append([arm, ", ".join(map(short, counted)), seeds_text(medians[arm]), t_interval(medians[arm]).text()])
    print_table(["student", "tasks its teacher informs", "median per seed", "mean [95% CI]"], rows)
    best = max(arms, key=lambda a: np.nanmean(medians[a]))
    ratio = counts["student"] / min(counts[t] for t in ARMS[best][1])
    line = verdict(t_interval(medians[best]), 95.0)
    print(f"VERDICT compression: the best student ({best}) keeps {t_interval(medians[best]).text()}% at "
          f"{100 * ratio:.1f}% of its teacher's parameters (bar: >= 95% at <= 10%): {line}\n")
    out["verdicts"]["compression"] = line
    out["retention"] = medians

    if not set(COMPARED) <= set(arms):
        print(f"Claims 2 and 3 (multi-teacher, Matryoshka) need the arms {', '.join(COMPARED)}; this run has "
              f"{', '.join(arms)}: not measured\n")
        out["verdicts"]["multi_teacher"] = out["verdicts"]["matryoshka"] = "not measured"
        out["verdicts"]["robustness"] = print_robustness(study, table, arms, medians)
        return out

    # multi-teacher: all three arms against one denominator, on the tasks either teacher informs
    denominator = teacher_of["multi"]
    counted = informed(denominator, noise, oracle, tasks)
    common = {arm: [retention(table[study.student(arm, s)], denominator, noise, counted) for s in seeds]
              for arm in COMPARED}
    common_medians = {arm: [median(r) for r in common[arm]] for arm in COMPARED}
    print("Claim 2, multi-teacher: median normalised retention of the better teacher per task (%), on the tasks "
          f"either teacher informs ({', '.join(map(short, counted))})\n")
    rows = [[arm, *[f"{np.mean([r[t] for r in common[arm]]):.0f}" for t in counted], seeds_text(common_medians[arm]),
             t_interval(common_medians[arm]).text()] for arm in COMPARED]
    print_table(["student", *map(short, counted), "median per seed", "mean [95% CI]"], rows)
    lines = []
    for single in ("tissue", "nuclei"):
        paired = np.array(common_medians["multi"]) - np.array(common_medians[single])
        interval = t_interval(paired)
        per_task = {t: np.mean([common["multi"][i][t] - common[single][i][t] for i in range(len(seeds))])
                    for t in counted}
        wins = sum(d > 0 for d in per_task.values())
        print(f"multi - {single}: per seed {seeds_text(paired, 1)}, mean [95% CI] {interval.text()} points; "
              f"ahead on {wins} of {len(per_task)} tasks (mean over seeds)")
        lines.append(comparison_verdict(interval))
    line = "holds" if all(v == "holds" for v in lines) else (
        "does not hold" if any(v == "does not hold" for v in lines) else "not shown")  # the weaker of the two
    print(f"VERDICT multi-teacher: beats the tissue student: {lines[0]}; beats the nuclei student: {lines[1]} "
          f"-> {line}\n")
    out["verdicts"]["multi_teacher"] = line
    out["multi_medians"] = common_medians

    # Matryoshka: each student at 8 dims against itself at 64
    print(f"Claim 3, Matryoshka: retention at {EIGHTH} of {STUDENT_KWARGS['dims'][-1]} dims, "
          f"(score@{EIGHTH} - noise) / (score@full - noise) x 100, median over the tasks its teacher informs\n")
    rows, nested = [], {}
    for arm in NESTED_SCORED:
        counted = informed(teacher_of[arm], noise, oracle, tasks)
        per_seed = []
        for s in seeds:
            full = table[study.student(arm, s)]
            gains = {t: full[t] for t in counted if t in full and full[t] - noise[t] > 0}
            per_seed.append(median(retention(table[study.student(arm, s) + f"-d{EIGHTH}"], gains, noise, list(gains))))
        nested[arm] = per_seed
        rows.append([arm, seeds_text(per_seed), t_interval(per_seed).text(), verdict(t_interval(per_seed), 90.0)])
    print_table(["student", "median per seed", "mean [95% CI]", "verdict (bar 90%)"], rows)
    line = verdict(t_interval(nested["multi"]), 90.0)
    print(f"VERDICT Matryoshka: the multi-teacher student at 1/8 of its dims keeps "
          f"{t_interval(nested['multi']).text()}% of its full-dim score: {line}\n")
    out["verdicts"]["matryoshka"] = line
    out["matryoshka"] = nested

    out["verdicts"]["robustness"] = print_robustness(study, table, arms, medians)
    return out


def print_robustness(study: Study, table: dict, arms: list[str], medians: dict) -> str:
    """Claim 4: synth-plism of each student against its teacher(s). The verdict line is the
    jittered multi-teacher student's (else the multi-teacher student's, else the first arm's), and
    when both multi arms ran, what the jitter changed: the paired difference per seed on synth-plism
    and on the median retention (the cost elsewhere)."""
    seeds = study.seeds
    print(f"Claim 4, robustness: {short(study.robustness_task)} score, student - teacher (the more robust of its "
          "teachers), and the student's median retention (claim 1) as the cost elsewhere\n")
    rows, robust_lines, scores = [], {}, {}
    for arm in arms:
        teachers = ARMS[arm][1]
        teacher_score = max(table[t].get(study.robustness_task, np.nan) for t in teachers)
        scores[arm] = np.array([table[study.student(arm, s)].get(study.robustness_task, np.nan) for s in seeds])
        difference = t_interval(scores[arm] - teacher_score)
        robust_lines[arm] = verdict(difference, 0.0)
        rows.append([arm, f"{teacher_score:.3f}", seeds_text(scores[arm], 3), difference.text(3), robust_lines[arm],
                     t_interval(medians[arm]).text(0)])
    print_table(["student", "teacher", "student per seed", "difference [95% CI]", "at least as robust",
                 "median retention [95% CI]"], rows)
    if {"multi", "multi-jitter"} <= set(arms):
        gain = scores["multi-jitter"] - scores["multi"]
        cost = np.array(medians["multi-jitter"]) - np.array(medians["multi"])
        print(f"multi-jitter - multi (the jitter alone): {short(study.robustness_task)} per seed "
              f"{seeds_text(gain, 3)}, "
              f"mean [95% CI] {t_interval(gain).text(3)} ({comparison_verdict(t_interval(gain))}); median retention "
              f"per seed {seeds_text(cost, 1)}, mean [95% CI] {t_interval(cost).text()} points\n")
    judged = next((arm for arm in ("multi-jitter", "multi") if arm in arms), arms[0])
    line = robust_lines[judged]
    print(f"VERDICT robustness: the {judged} student is at least as robust as its teacher(s) on "
          f"{short(study.robustness_task)}: {line}\n")
    return line


def last_quarter_drop(losses) -> float:
    """How much the curve fell over the last quarter of training, % of its value there."""
    quarter = losses[int(0.75 * (len(losses) - 1))]
    return float(100 * (quarter - losses[-1]) / quarter)


def mean_curve(study: Study, arm: str, key: str) -> tuple[list[int], np.ndarray] | None:
    """(steps, mean over seeds) of one distill.json curve (loss_curve or held_out_curve)."""
    curves = []
    for seed in study.seeds:
        record = study.out / "students" / study.student(arm, seed) / "distill.json"
        if record.exists():
            curves.append(json.loads(record.read_text()).get(key) or [])
    curves = [c for c in curves if c]
    if not curves:
        return None
    points = [c["step"] for c in curves[0]]
    return points, np.mean([[c["loss"] for c in curve] for curve in curves if len(curve) == len(points)], axis=0)


def print_loss_curves(study: Study) -> dict:
    """Mean loss over seeds at ten points of training, and how much it still fell in the last
    quarter: on the training batches, and on the held-out tiles (the same objective on the 1 in 10
    never trained on, measured at each checkpoint without augmentation: whether more steps would
    still help on tiles the student has not seen)."""
    drops: dict = {}
    for key, title in (("loss_curve", "Training loss (distill.json loss_curve: mean of each stretch; mean over seeds)"),
                       ("held_out_curve", "Held-out loss (distill.json held_out_curve: the same objective on the "
                                          "held-out tiles at each checkpoint; mean over seeds)")):
        rows, header = [], None
        for arm in study.arms:
            curve = mean_curve(study, arm, key)
            if curve is None:
                continue
            points, losses = curve
            picks = sorted(set(np.linspace(0, len(points) - 1, min(10, len(points))).round().astype(int)))
            header = header or ["student", *[str(points[i]) for i in picks], "last-quarter drop"]
            drops.setdefault(arm, {})[key] = last_quarter_drop(losses)
            rows.append([arm, *[f"{losses[i]:.4f}" for i in picks], f"{drops[arm][key]:.1f}%"])
        if header:
            print(title + "\n")
            print_table(header, rows)
    return drops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1600)
    parser.add_argument("--lr", type=float, default=Study.lr)
    parser.add_argument("--tasks", help="comma-separated scored tasks (default: the synthetic suite but synth-seg)")
    parser.add_argument("--bracket-tasks", help="comma-separated tasks of the teachers' bracket (default: all synthetic)")
    parser.add_argument("--robustness-task", default=ROBUSTNESS_TASK, help="the stain-robustness task of claim 4")
    parser.add_argument("--dataset", default="synth-distill-mixed", help="the distillation tiles (a registry dataset)")
    parser.add_argument("--include", action="append", default=[], help="extra registry YAML (passed to harness)")
    parser.add_argument("--cache-dir", help="passed to harness")
    parser.add_argument("--report-only", action="store_true", help="print the tables from what is there")
    parser.add_argument("--arms", default=",".join(ARMS),
                        help=f"comma-separated arms to train and score (default: all of {', '.join(ARMS)}; "
                             "claims 2 and 3 need tissue, nuclei and multi)")
    args = parser.parse_args()
    if len(args.seeds) < 2:
        parser.error("--seeds: at least two training seeds (the comparisons are paired over seeds)")
    extra = tuple(a for f in args.include for a in ("--include", f))
    extra += ("--cache-dir", args.cache_dir) if args.cache_dir else ()
    tasks = tuple(args.tasks.split(",")) if args.tasks else TASKS
    bracket = tuple(args.bracket_tasks.split(",")) if args.bracket_tasks else (BRACKET_TASKS if not args.tasks else tasks)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    arms = tuple(dict.fromkeys(a.strip() for a in args.arms.split(",") if a.strip()))
    if not arms or set(arms) - set(ARMS):
        parser.error(f"--arms: choose from {', '.join(ARMS)} (got {args.arms!r})")
    study = Study(args.out, args.seeds, args.steps, tasks, bracket, args.dataset, args.lr, args.robustness_task, extra,
                  arms)
    started = time.perf_counter()
    if not args.report_only:
        train_and_score(study)
    verdicts = report(study)
    verdicts["wall_minutes"] = round((time.perf_counter() - started) / 60, 1)
    (args.out / "verdicts.json").write_text(json.dumps(verdicts, indent=2, default=float) + "\n")
    print(f"wall time {verdicts['wall_minutes']:.1f} min (this invocation: what an earlier one trained and scored is "
          "reused, not counted)")


if __name__ == "__main__":
    main()
