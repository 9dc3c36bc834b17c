"""Students against their teachers, on the same run: retention, size, speed, fidelity.

retention(task) = student main score / teacher main score x 100 (per teacher), on main scores
that are better the higher they are (an error or a drop has none: a ratio of errors would rank the
worse model higher); the median over tasks is the headline. Where the results folder also holds
`random-noise` on a task, the normalised retention (student - noise) / (teacher - noise) x 100 is
given too, in either direction, so a saturated task cannot decide the median: its median is taken
over the tasks the teacher informs (it closes at least a quarter of the noise-to-`synth-oracle`
gap; without an oracle result, it beats noise). Parameters are the backbone's; throughput is items/s of embedding on
this device (from the result files); on slide tasks also tiles per slide and slides/min (a
cross-magnification student reads far fewer tiles); fidelity comes from distill.json (held-out
items), and so do the training curves (the loss during training and on the held-out items).
Written to <results>/<student>/distillation.json for the leaderboard's teacher-vs-student view.

A task whose scored images are among the distillation images (the student learnt the teachers'
embeddings of the very images it is scored on) is marked `on_training_images` and left out of the
medians, which are about held-out images. One rule decides it (`tasks_on_distillation_images`):
the distillation took images of a split the task's family scores (`TaskFamily.scored_splits`: the
test split, or every item for cross-validation and robustness families) of its tested dataset,
the same images wherever their embeddings are cached under the same key (synth-vqa's are
synth-tiles'). `harness distill --score` applies it before training,
to say so while the student can still be distilled on other data, and again after training on
what the distillation took, for the report and under its table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from harness.atomic_write import write_json_atomic
from harness.errors import HarnessError
from harness.results import DISTILLATION_REPORT, TRAINING_CURVES, ResultStore


def report_path(results: Path, student_slug: str) -> Path:
    """Where `compare` writes a student's report: beside its results."""
    return Path(results) / student_slug / DISTILLATION_REPORT


def compare(results: Path, student_slug: str, teacher_slugs: dict[str, str], tasks: list[str],
            distill_record: dict, on_training_images: Sequence[str] = ()) -> dict:
    """The report; `on_training_images`: the tasks scored on the distillation images
    (tasks_on_distillation_images), kept per task and left out of the medians."""
    store = ResultStore(results)
    student = {t: store.read(store.path(student_slug, t)) for t in tasks}
    report = {"student": student_slug, "teachers": {}, "matryoshka_dims": distill_record.get("matryoshka_dims", []),
              "fidelity": distill_record.get("fidelity", {}), "method": distill_record.get("method")}
    training = {key: distill_record[key] for key in TRAINING_CURVES if distill_record.get(key)}
    if training:  # the loss during training and on the held-out items: did the student converge?
        report["training"] = training
    any_student = next((r for r in student.values() if r and r.status == "ok"), None)
    if any_student:  # the name its results carry, as the board shows it beside the other models
        report["student_name"] = any_student.model.name
    marked = set(on_training_images)
    seen = [task for task in tasks if task in marked and student[task]]
    if seen:
        report["on_training_images"] = seen
    noise, oracle = _scores(store, NOISE, tasks), _scores(store, ORACLE, tasks)
    for teacher_name, teacher_slug in teacher_slugs.items():
        teacher = {t: store.read(store.path(teacher_slug, t)) for t in tasks}
        rows, retention, normalised = {}, [], []
        for task in tasks:
            s, t = student[task], teacher[task]
            if not (s and t and s.status == t.status == "ok" and t.main_score.value is not None
                    and s.main_score.value is not None):
                continue
            higher = _higher_is_better(t)
            # a ratio only means "kept x% of the teacher" for a score that is better the higher it is
            # and positive here: of an error (lower is better) or a negative score it would reward
            # the worse model; those tasks keep only the normalised retention, below
            value = 100.0 * s.main_score.value / t.main_score.value if higher and t.main_score.value > 0 else None
            held_out = task not in seen  # a score on the distillation images is shown, not a headline
            if value is not None and held_out:
                retention.append(value)
            rows[task] = {"student": s.main_score.value, "teacher": t.main_score.value, "retention": value}
            if not held_out:
                rows[task]["on_training_images"] = True
            floor = noise.get(task)
            if floor is not None and t.main_score.value != floor:
                gap = t.main_score.value - floor  # from noise toward the teacher, in either direction
                sign = 1.0 if higher else -1.0
                informs = (sign * gap >= 0.25 * sign * (oracle[task] - floor) if task in oracle
                           else sign * gap > 0)
                rows[task].update(noise=floor, normalised_retention=100.0 * (s.main_score.value - floor) / gap,
                                  teacher_informs=bool(informs))
                if informs and held_out:
                    normalised.append(rows[task]["normalised_retention"])
        any_teacher = next((r for r in teacher.values() if r and r.status == "ok"), None)
        report["teachers"][teacher_name] = {
            "tasks": rows, "median_retention": float(np.median(retention)) if retention else None,
            "median_normalised_retention": float(np.median(normalised)) if normalised else None,
            "parameters": {"student": any_student.model.n_parameters if any_student else None,
                           "teacher": any_teacher.model.n_parameters if any_teacher else None},
            "embed_dim": {"student": any_student.model.embed_dim if any_student else None,
                          "teacher": any_teacher.model.embed_dim if any_teacher else None},
            "items_per_s": {"student": _rate(student.values()),
                            "teacher": _rate(teacher.values())},
        }
        if any(_tiles_per_slide([r]) for r in student.values()):  # slide tasks: the speed that counts
            report["teachers"][teacher_name]["tiles_per_slide"] = {"student": _tiles_per_slide(student.values()),
                                                                   "teacher": _tiles_per_slide(teacher.values())}
            report["teachers"][teacher_name]["slides_per_min"] = {
                "student": _rate(student.values(), "slides_per_min"), "teacher": _rate(teacher.values(), "slides_per_min")}
    write_json_atomic(report_path(results, student_slug), report)
    return report


NOISE, ORACLE = "random-noise", "synth-oracle"  # the floor and the ceiling, by their result slugs
# what to do about tasks scored on the distillation images, said before training and under the table
DISTIL_ELSEWHERE = ("Distil on data no scored task tests (synth-distill-mixed, the default) or on splits the tasks "
                    "do not report (--set splits=[...], where they report one split)")


def tasks_on_distillation_images(registry, families, tasks: Sequence[str], dataset: str | None,
                                 taken: Sequence[str] | None, context) -> list[str]:
    """The tasks whose scored items are among the images the student is distilled on: the items of
    `dataset`'s splits `taken` (None: all of them, as from a slide dataset), against each task's
    scored items (`scored_items`). Images are compared by what their embeddings are cached under
    (`split_fingerprint`), so datasets that share images under other annotations (synth-vqa's are
    synth-tiles') count as one; slide datasets by name. A dataset that cannot be opened (not on
    disk: its tasks are skipped) marks nothing."""
    if dataset is None:
        return []
    seen = _SplitKeys(registry, context)
    distilled = seen.keys(dataset, taken)
    marked = []
    for name in tasks:
        tested, scored = scored_items(registry, families, name, seen.names(registry.tasks[name].dataset))
        if (tested == dataset and seen.kind(dataset) == "slides") or distilled & seen.keys(tested, scored):
            marked.append(name)
    return marked


def scored_items(registry, families, task_name: str, dataset_splits: Sequence[str]) -> tuple[str, list[str] | None]:
    """(the dataset whose items a task's main score is computed on, its splits holding them; None:
    every split). A cross-cohort task tests its test cohort's test split; a transformed dataset's
    items are its base dataset's `split`, transformed (the registry refuses a base that is itself
    made from another); else the family says (`scored_splits`, among `dataset_splits`, the task's
    dataset's split names)."""
    task = registry.tasks[task_name]
    if task.test_dataset:
        return task.test_dataset, [task.test_split]
    spec = registry.datasets.get(task.dataset)
    if getattr(spec, "source", None) == "transformed":
        return spec.base, [spec.split]
    family = families[task.family]
    return task.dataset, family.scored_splits(family.Params.model_validate(task.params), list(dataset_splits))


def distilled_on(record: dict) -> tuple[str | None, list[str] | None]:
    """(dataset, the splits taken; None: every item) from a distillation record (distill.json)."""
    tiles = record.get("distillation_tiles") or {}
    taken = tiles.get("splits")
    return tiles.get("dataset"), (list(taken) if taken is not None else None)


class _SplitKeys:
    """Each dataset's kind, split names and splits' image keys, opened once; a source that cannot
    be opened (its data not on disk) has no splits and no keys."""

    def __init__(self, registry, context):
        self.registry, self.context, self.sources = registry, context, {}

    def _source(self, dataset: str):
        if dataset not in self.sources:
            from harness.sources import open_source

            try:
                self.sources[dataset] = open_source(dataset, self.registry.datasets[dataset], self.context,
                                                    self.registry.datasets)
            except (HarnessError, OSError, ValueError, KeyError):
                self.sources[dataset] = None
        return self.sources[dataset]

    def kind(self, dataset: str) -> str | None:
        source = self._source(dataset)
        return source.kind if source is not None else None

    def names(self, dataset: str) -> list[str]:
        source = self._source(dataset)
        if source is None or source.kind != "tiles":
            return []
        try:
            return list(source.split_names())
        except (HarnessError, OSError, ValueError, KeyError):
            return []

    def keys(self, dataset: str, splits: Sequence[str] | None) -> set[tuple[str, str]]:
        """(split, its images' cache key) for each of `splits` (None: every split) the dataset has
        (a source's key may be the whole dataset's, the same for every split: hence the name)."""
        names = self.names(dataset)
        source = self._source(dataset)
        keys = set()
        for split in names if splits is None else [s for s in splits if s in names]:
            try:
                keys.add((split, source.split_fingerprint(split)))
            except (HarnessError, OSError, ValueError, KeyError):
                continue
        return keys


def _higher_is_better(result) -> bool:
    """The main score's direction as the result's family declared it (older files: higher)."""
    info = result.metric_info.get(result.main_score.name)
    return True if info is None else info.higher_is_better


def _scores(store: ResultStore, slug: str, tasks: list[str]) -> dict[str, float]:
    results = {task: store.read(store.path(slug, task)) for task in tasks}
    return {task: r.main_score.value for task, r in results.items() if r and r.status == "ok"}


def _rate(results, field: str = "items_per_s") -> float | None:
    """Median throughput over the results that measured it (instruments have no speed)."""
    rates = [getattr(r.timings, field) for r in results
             if r and r.status == "ok" and getattr(r.timings, field) and r.model.weights != "instrument"]
    return float(np.median(rates)) if rates else None


def _tiles_per_slide(results) -> float | None:
    counts = [r.details["tiling"]["tiles_per_slide"] for r in results
              if r and r.status == "ok" and (r.details.get("tiling") or {}).get("tiles_per_slide")]
    return float(np.median(counts)) if counts else None
