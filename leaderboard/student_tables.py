"""The Students tab's tables: teacher-against-student reports (`harness distill --score`), their
training curves, and scores against embedding dims for models scored at truncated dims
(`harness run --dims`, Matryoshka students).

Reports are untrusted: one that cannot be laid out whole as rows, numbers and bounded curves is a
warning naming its file, never an error.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from harness.bounded_read import read_json
from harness.results import MAX_RESULT_BYTES, TRAINING_CURVES, TaskResult


def load_distillation_reports(folder: Path) -> tuple[list[dict], list[str]]:
    """The teacher-vs-student reports `harness distill --score` writes (<slug>/distillation.json);
    one that cannot be laid out as retention rows is a warning naming it, never an error."""
    reports, warnings = [], []
    for path in sorted(Path(folder).glob("*/distillation.json")):
        try:
            reports.append(read_distillation_report(path))
        except REPORT_ERRORS as error:
            warnings.append(f"{path}: skipped, not a distillation report ({str(error).splitlines()[0][:100]})")
    return reports, warnings


REPORT_ERRORS = (OSError, ValueError, TypeError, KeyError, AttributeError, ZeroDivisionError)
MAX_NAME = 1000  # as a result's model name


def student_name(report: dict) -> str:
    """The student as its results name it (the board's name for it); its results folder in a report
    written before the name was kept."""
    return report.get("student_name") or report["student"]


def read_distillation_report(path: Path) -> dict:
    """One report, read only if every row, number and curve the board shows of it can be made from
    it; one of REPORT_ERRORS otherwise."""
    report = read_json(path, MAX_RESULT_BYTES, "distillation report")
    if not isinstance(report, dict) or not isinstance(report.get("teachers"), dict):
        raise ValueError("no 'teachers' table")
    if not isinstance(report.get("student"), str):
        raise ValueError("no 'student' name")
    name = report.get("student_name")
    if name is not None and not (isinstance(name, str) and 0 < len(name) <= MAX_NAME):
        raise ValueError(f"'student_name' is not a name of 1 to {MAX_NAME} characters")
    for row in retention_rows(report):  # every row it will be shown as can be made, with numbers
        for key in ("teacher score", "student score", "retention %", "normalised retention %"):
            if row.get(key) is not None and not math.isfinite(float(row[key])):
                raise ValueError(f"{key} is not a finite number")
    for values in (report.get("fidelity") or {}).values():
        float(values["one_minus_mean_cosine"]), float(values["variance_over_mse"])
    training_curves(report)  # each curve a bounded list of finite points
    return report


def retention_rows(report: dict) -> list[dict]:
    """One row per (teacher, task) of a distillation report, plus the size and speed ratios."""
    rows = []
    for teacher, table in report["teachers"].items():
        params, speed = table.get("parameters", {}), table.get("items_per_s", {})
        for task, row in table.get("tasks", {}).items():
            rows.append({"student": student_name(report), "teacher": teacher, "task": task,
                         "teacher score": row["teacher"], "student score": row["student"],
                         "retention %": row["retention"], "median retention %": table.get("median_retention"),
                         "parameters (student / teacher)": _ratio(params.get("student"), params.get("teacher")),
                         "throughput (student / teacher)": _ratio(speed.get("student"), speed.get("teacher"))})
            if row.get("on_training_images") is True:  # distilled on these images: not in the medians
                rows[-1]["scored on its training images"] = "yes"
            if "normalised_retention" in row:  # from random-noise's score toward the teacher's: errors too
                rows[-1]["normalised retention %"] = row["normalised_retention"]
            if "tiles_per_slide" in table:  # slide tasks (a cross-magnification student reads fewer tiles)
                tiles, slides = table["tiles_per_slide"], table.get("slides_per_min", {})
                rows[-1]["tiles per slide (student / teacher)"] = _ratio(tiles.get("student"), tiles.get("teacher"))
                rows[-1]["slides/min (student / teacher)"] = _ratio(slides.get("student"), slides.get("teacher"))
    return rows


MAX_CURVE_POINTS = 10_000  # a point per checkpoint: a million steps at one every 100
MAX_STEP = 10**12  # beyond any training run; a larger integer cannot be charted (Arrow's int64)
CURVE_NAMES = dict(zip(TRAINING_CURVES, ("training", "held-out")))  # as the chart names them


def training_curves(report: dict) -> list[dict]:
    """A student's loss curves from its report's `training` (distill.json's loss_curve and
    held_out_curve): one row per (curve, step). ValueError where a curve is not a list of at most
    MAX_CURVE_POINTS {"step": integer 0..MAX_STEP, "loss": finite number} points."""
    training = report.get("training") or {}
    if not isinstance(training, dict):
        raise ValueError("'training' is not a table of curves")
    rows = []
    for key, name in CURVE_NAMES.items():
        points = training.get(key) or []
        if not isinstance(points, list) or len(points) > MAX_CURVE_POINTS:
            raise ValueError(f"training.{key} is not a list of at most {MAX_CURVE_POINTS:,} points")
        for point in points:
            step, loss = point["step"], point["loss"]
            if not (isinstance(step, int) and not isinstance(step, bool) and 0 <= step <= MAX_STEP):
                raise ValueError(f"training.{key}: a step is not a whole number from 0 to {MAX_STEP:.0e}")
            if isinstance(loss, bool) or not isinstance(loss, (int, float)) or not math.isfinite(loss):
                raise ValueError(f"training.{key}: a loss is not a finite number")
            rows.append({"student": student_name(report), "curve": name, "step": step, "loss": float(loss)})
    return rows


def _ratio(a, b) -> float | None:
    return float(a) / float(b) if a and b else None


TRUNCATED = re.compile(r"(.*)@(\d+)d")  # `harness run --dims`: the model's name @ the dims kept


def is_truncated(model_name: str) -> bool:
    return TRUNCATED.fullmatch(model_name) is not None


def matryoshka_curves(results: list[tuple[str, TaskResult]]) -> list[dict]:
    """Score against embedding dim for models scored at truncated dims (`harness run --dims`):
    rows of model, task, dim, score (the untruncated result at its full dim)."""
    ok = [r for _, r in results if r.status == "ok"]
    truncated = {(TRUNCATED.fullmatch(r.model.name)[1], r.task) for r in ok if is_truncated(r.model.name)}
    rows = []
    for r in ok:
        match = TRUNCATED.fullmatch(r.model.name)
        base, dim = (match[1], int(match[2])) if match else (r.model.name, r.model.embed_dim)
        if (base, r.task) in truncated and dim:
            rows.append({"model": base, "task": r.task, "dim": dim, "score": r.main_score.value})
    return sorted(rows, key=lambda row: (row["model"], row["task"], row["dim"]))
