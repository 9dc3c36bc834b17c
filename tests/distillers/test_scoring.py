"""Students against teachers on hand-made result files: retention per task and its median, and
sizes and speeds taken from whichever results exist."""

import json

import pytest

from harness.distillers.scoring import compare


def write_result(root, model, task, value, params, rate, higher_is_better=True):
    result = {
        "task": task, "task_version": 1, "family": "tile_classification", "status": "ok", "reason": None,
        "model": {"name": model, "weights": "checkpoint", "weights_sha256": "0" * 64, "n_parameters": params,
                  "embed_dim": 8 if model == "student" else 64},
        "dataset": {"name": task, "source": "synth"},
        "main_score": {"name": "balanced_accuracy", "value": value},
        "timings": {"embed_s": 1.0, "eval_s": 1.0, "items_per_s": rate},
        "metric_info": {"balanced_accuracy": {"higher_is_better": higher_is_better, "bounds": [None, None]}},
    }
    (root / model).mkdir(parents=True, exist_ok=True)
    (root / model / f"{task}.json").write_text(json.dumps(result))


def test_retention_and_sizes_when_the_teacher_lacks_the_first_task(tmp_path):
    for task, student, teacher in [("t1", 0.5, None), ("t2", 0.6, 0.8), ("t3", 0.9, 0.9), ("t4", 0.7, 0.5)]:
        write_result(tmp_path, "student", task, student, 10, 200.0)
        if teacher is not None:  # the teacher was never scored on t1
            write_result(tmp_path, "teacher", task, teacher, 1000, 20.0 if task != "t4" else 40.0)
    report = compare(tmp_path, "student", {"big": "teacher"}, ["t1", "t2", "t3", "t4"], {"fidelity": {"big": {}}})
    row = report["teachers"]["big"]
    assert set(row["tasks"]) == {"t2", "t3", "t4"}  # t1: the teacher has no score
    assert row["tasks"]["t2"]["retention"] == pytest.approx(75.0)
    assert row["median_retention"] == pytest.approx(100.0)  # median of 75, 100, 140
    assert row["parameters"] == {"student": 10, "teacher": 1000}
    assert row["embed_dim"] == {"student": 8, "teacher": 64}
    assert row["items_per_s"] == {"student": 200.0, "teacher": 20.0}  # median of 20, 20, 40
    assert json.loads((tmp_path / "student" / "distillation.json").read_text()) == report
    assert "training" not in report  # distill.json without curves: none in the report
    curves = {"loss_curve": [{"step": 100, "loss": 0.3}], "held_out_curve": [{"step": 100, "loss": 0.4}]}
    report = compare(tmp_path, "student", {"big": "teacher"}, ["t2"], {**curves, "fidelity": {}, "steps": 100})
    assert report["training"] == curves  # the curves, and nothing else of distill.json


def test_the_report_names_the_student_as_its_results_do(tmp_path, capsys):
    """The board names a student by its results' model name (a card's `students/tiny`), not by the
    folder they are in (`students--tiny`): the report keeps that name, and its rows, its heading and
    the terminal's table use it. A report written before falls back to the folder; a name that is not
    a bounded string leaves the report out with a warning naming the file."""
    from harness.leaderboard.student_tables import load_distillation_reports, retention_rows, training_curves
    from harness.run_summary import print_retention

    for model, value in (("students--tiny", 0.6), ("teacher", 0.8)):
        write_result(tmp_path, model, "t1", value, 10, 100.0)
    path = tmp_path / "students--tiny" / "t1.json"
    path.write_text(path.read_text().replace('"name": "students--tiny"', '"name": "students/tiny"'))
    curves = {"loss_curve": [{"step": 100, "loss": 0.3}]}
    report = compare(tmp_path, "students--tiny", {"big": "teacher"}, ["t1"], {**curves, "fidelity": {}})
    assert report["student"] == "students--tiny" and report["student_name"] == "students/tiny"
    assert {row["student"] for row in retention_rows(report) + training_curves(report)} == {"students/tiny"}
    print_retention(report, tmp_path / "students--tiny" / "distillation.json")
    assert "student students/tiny against its teachers" in capsys.readouterr().out
    older = {key: value for key, value in report.items() if key != "student_name"}
    assert [row["student"] for row in retention_rows(older)] == ["students--tiny"]

    report_file = tmp_path / "students--tiny" / "distillation.json"
    for hostile in (["students/tiny"], "", "x" * 1001):
        report_file.write_text(json.dumps({**report, "student_name": hostile}))
        reports, warnings = load_distillation_reports(tmp_path)
        assert reports == [] and len(warnings) == 1
        assert warnings[0].startswith(f"{report_file}: skipped, not a distillation report ('student_name'")


def test_normalised_retention_measures_from_the_noise_floor_over_the_tasks_the_teacher_informs(tmp_path):
    """(student - noise) / (teacher - noise): a saturated task where noise is already high cannot
    lift the median; a task the teacher barely informs (under a quarter of the noise-to-oracle
    gap) is left out of it."""
    rows = [  # task, student, teacher, noise, oracle
        ("saturated", 0.95, 0.96, 0.90, 1.0),  # plain retention 99%, normalised 83%
        ("learnt", 0.60, 0.80, 0.40, 1.0),  # normalised 50%
        ("uninformed", 0.45, 0.42, 0.40, 1.0),  # the teacher closes 3% of the gap: not informs
    ]
    for task, student, teacher, noise, oracle in rows:
        for model, value in (("student", student), ("teacher", teacher), ("random-noise", noise),
                             ("synth-oracle", oracle)):
            write_result(tmp_path, model, task, value, 10, 1.0)
    report = compare(tmp_path, "student", {"t": "teacher"}, [r[0] for r in rows], {})["teachers"]["t"]
    assert report["tasks"]["saturated"]["normalised_retention"] == pytest.approx(100 * 0.05 / 0.06)
    assert report["tasks"]["uninformed"]["teacher_informs"] is False
    assert report["median_normalised_retention"] == pytest.approx((100 * 0.05 / 0.06 + 50.0) / 2)
    assert report["median_retention"] == pytest.approx(100 * 0.95 / 0.96)


def test_an_error_or_a_negative_score_has_no_ratio_and_its_normalised_retention_keeps_its_direction(tmp_path):
    """A main score that is better lower (an error, a drop): student / teacher would give the worse
    student over 100%; a negative teacher score flips a ratio the same way. Neither gets a ratio;
    the normalised retention, measured from noise toward the teacher, holds in either direction."""
    rows = [  # task, student, teacher, noise, oracle, higher is better
        ("error", 0.20, 0.10, 0.50, 0.0, False),  # the student has twice the teacher's error
        ("negative", -0.30, -0.10, -0.50, 1.0, True),  # the student is further below zero
        ("accuracy", 0.60, 0.80, 0.40, 1.0, True),
    ]
    for task, student, teacher, noise, oracle, higher in rows:
        for model, value in (("student", student), ("teacher", teacher), ("random-noise", noise),
                             ("synth-oracle", oracle)):
            write_result(tmp_path, model, task, value, 10, 1.0, higher_is_better=higher)
    report = compare(tmp_path, "student", {"t": "teacher"}, [r[0] for r in rows], {})["teachers"]["t"]
    assert report["tasks"]["error"]["retention"] is None  # not 200%
    assert report["tasks"]["negative"]["retention"] is None  # not 300%
    assert report["median_retention"] == pytest.approx(75.0)  # the accuracy task's alone
    assert report["tasks"]["error"]["normalised_retention"] == pytest.approx(75.0)  # (0.2 - 0.5) / (0.1 - 0.5)
    assert report["tasks"]["error"]["teacher_informs"] is True  # 0.4 of the 0.5 from noise to oracle
    assert report["tasks"]["negative"]["normalised_retention"] == pytest.approx(50.0)
    assert report["tasks"]["negative"]["teacher_informs"] is True
    # the board lays the report out, a row without a ratio included
    from harness.leaderboard.student_tables import read_distillation_report
    assert read_distillation_report(tmp_path / "student" / "distillation.json")["student"] == "student"


def test_a_task_scored_on_the_distillation_images_is_marked_and_left_out_of_the_medians(tmp_path, capsys):
    """The default distillation data (synth-plism) is a scored task's data: the student learnt its
    teachers' embeddings of those very images, and their retention entered the headline medians
    without a word. Now such a task is marked, kept per task, left out of the medians and said."""
    from harness.run_summary import print_retention

    for task, student, teacher in [("synth-plism", 0.9, 0.9), ("t2", 0.6, 0.8), ("t3", 0.45, 0.5)]:
        write_result(tmp_path, "student", task, student, 10, 200.0)
        write_result(tmp_path, "teacher", task, teacher, 1000, 20.0)
    record = {"distillation_tiles": {"dataset": "synth-plism"}}
    report = compare(tmp_path, "student", {"big": "teacher"}, ["synth-plism", "t2", "t3"], record,
                     on_training_images=["synth-plism"])
    row = report["teachers"]["big"]
    assert report["on_training_images"] == ["synth-plism"]
    assert row["tasks"]["synth-plism"] == {"student": 0.9, "teacher": 0.9, "retention": pytest.approx(100.0),
                                           "on_training_images": True}
    assert row["median_retention"] == pytest.approx((75.0 + 90.0) / 2)  # t2 and t3 alone (with it: 90)
    print_retention(report, tmp_path / "student" / "distillation.json")
    said = " ".join(capsys.readouterr().out.split())
    assert "3 (1 not held out)" in said
    assert "the student was distilled on the images these tasks score: synth-plism" in said
    assert "(--set splits=[...], where they report one split)" in said  # as written, not read as rich markup
    from harness.leaderboard.student_tables import retention_rows

    marked = {row["task"]: row.get("scored on its training images") for row in retention_rows(report)}
    assert marked == {"synth-plism": "yes", "t2": None, "t3": None}  # the board's Students view says it too

    report = compare(tmp_path, "student", {"big": "teacher"}, ["synth-plism", "t2", "t3"], record)
    assert "on_training_images" not in report and report["teachers"]["big"]["median_retention"] == pytest.approx(90.0)


NO_TEST_SPLIT = """
datasets:
  val-only:
    source: synth
    generator: tiles
    params: {tile_size: 64, per_class: {train: 6, val: 3}, seed: 3}
tasks:
  val-only-tiles:
    family: tile_classification
    dataset: val-only
    main_score: balanced_accuracy
"""


def test_one_rule_names_the_tasks_that_score_the_distillation_images(tmp_path):
    """Which tasks a distillation's images reach, by what each family scores: the test split (or
    `val` where there is none), every item for all-pairs robustness and cross-validation, a
    transformed copy of a split, and the same images under other annotations. The rule read the
    split from the registry before training and from the results after, and compared dataset
    names: a distillation on some of synth-plism's domains, on synth-tiles' test split (which
    synth-invariance transforms and synth-vqa annotates), or on a val-only dataset's `val`, was
    not marked after training, before it, or both."""
    from harness.distillers.scoring import distilled_on, tasks_on_distillation_images
    from harness.registry import load_registry
    from harness.sources import DataContext, open_source
    from harness.tasks import FAMILIES

    extra = tmp_path / "no-test.yaml"
    extra.write_text(NO_TEST_SPLIT)
    registry = load_registry([extra], FAMILIES)
    synthetic = registry.select("synthetic")
    context = DataContext(cache_dir=tmp_path / "cache", data_root=tmp_path / "data")

    def marked(dataset, taken, tasks=synthetic):
        return tasks_on_distillation_images(registry, FAMILIES, tasks, dataset, taken, context)

    assert marked("synth-plism", None) == ["synth-plism"]
    domains = open_source("synth-plism", registry.datasets["synth-plism"], context, registry.datasets).split_names()
    assert marked("synth-plism", domains[:2]) == ["synth-plism"]  # every domain's tiles are scored
    assert marked("synth-cohort-b", None) == ["synth-cross-cohort"]  # the test cohort
    assert marked("synth-cohort-b", ["train"]) == []
    assert marked("synth-cohort-a", None) == ["synth-cohort"]
    on_its_images = {"synth-tiles", "synth-retrieval", "synth-invariance", "synth-vqa", "synth-report"}
    assert on_its_images <= set(marked("synth-tiles", ["test"]))
    assert on_its_images <= set(marked("synth-vqa", None))  # the same images, annotated with questions
    # fitted on, not scored; but gene expression and centre robustness score every item of the same images
    assert marked("synth-tiles", ["train"]) == ["synth-st", "synth-centre-robustness"]
    slide_tasks = [t for t in synthetic if registry.tasks[t].dataset == "synth-slides"]
    assert slide_tasks and marked("synth-slides", None) == slide_tasks  # cross-validation over every slide
    assert marked("synth-distill-mixed", None) == []
    assert marked("val-only", ["val"], ["val-only-tiles"]) == ["val-only-tiles"]  # reported on val, as it runs
    assert marked("val-only", ["train"], ["val-only-tiles"]) == []
    assert marked("synth-tiles", ["val"], ["synth-tiles"]) == []  # selected on, reported on test
    # after training the rule reads what the distillation took from its record
    record = {"distillation_tiles": {"dataset": "val-only", "splits": ["val"]}}
    assert marked(*distilled_on(record), ["val-only-tiles"]) == ["val-only-tiles"]
    slides = {"distillation_tiles": {"dataset": "synth-slides", "slides": 40}}  # no splits: every slide
    assert marked(*distilled_on(slides)) == slide_tasks
    assert marked("not-there", None) == []  # a dataset that cannot be opened marks nothing


def test_the_rule_picks_the_split_each_family_reports():
    """`scored_splits` and `evaluate` pick the reported split with one function: held to the split a
    tile classification result records (details.eval_split) on a dataset without a test split."""
    import numpy as np

    from harness.evaluation import SplitArrays, TaskData
    from harness.tasks import FAMILIES

    family = FAMILIES["tile_classification"]
    rng = np.random.default_rng(0)
    splits = {name: SplitArrays(rng.normal(size=(40, 4)).astype(np.float32) + np.repeat([[0], [3]], 20, axis=0),
                                np.repeat([0, 1], 20)) for name in ("train", "val")}
    params = family.Params(seeds=[0], max_steps=20, eval_every=10, patience=10, knn_k=[1], fewshot_shots=[],
                           bootstrap_resamples=10)
    result = family().evaluate(TaskData(splits=splits, class_names=["a", "b"]), params)
    assert family.scored_splits(params, list(splits)) == [result.details["eval_split"]] == ["val"]
    assert family.scored_splits(params, ["train", "val", "test"]) == ["test"]
    segmentation = FAMILIES["segmentation"]
    seg = segmentation.Params()
    assert segmentation.scored_splits(seg, ["train", "val"]) == ["val"]
    assert segmentation.scored_splits(seg, ["train", "val", "test"]) == ["test"]


def test_the_tasks_that_would_score_the_distillation_images_are_said_before_training(tmp_path, monkeypatch, capsys):
    """The same rule before any teacher runs: `distill --score` on synth-plism (the default data
    until no task's data was) names synth-plism while the student can still be distilled on other
    data; on the default data, nothing is said."""
    from harness.cli import main
    from harness.distillers import run as distill_run
    from harness.errors import HarnessError

    def stop(*args, **kwargs):  # the warning comes before training; nothing is trained here
        raise HarnessError("stopped before training")

    monkeypatch.setattr(distill_run, "distill", stop)
    command = ["distill", "--teacher", "synth-oracle-tissue", "--output", str(tmp_path / "student"), "--score",
               "synth-tiles,synth-plism", "--results", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache")]
    assert main([*command, "--set", "dataset=synth-plism"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.index("warning: --score synth-plism: these tasks score images of synth-plism, which the student is "
                     "distilled on (every split)") < err.index("stopped before training")
    assert "(--set splits=[...], where they report one split)" in err
    assert main(command) == 2  # the default data: no task scores it
    err = capsys.readouterr().err
    assert "warning" not in err and "stopped before training" in err
