"""The Streamlit app's views, run by Streamlit's own AppTest (no browser)."""

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from harness.leaderboard.formatting import plain
from tests.support.result_files import write_result

APP = str(Path(__file__).resolve().parents[2] / "leaderboard" / "app.py")


def run_app(monkeypatch, folder: Path) -> AppTest:
    monkeypatch.setenv("HARNESS_RESULTS", str(folder))
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    assert not app.exception
    return app


def test_empty_folder_gives_a_hint_not_an_error(monkeypatch, tmp_path):
    app = run_app(monkeypatch, tmp_path / "nothing")
    assert "harness run" in app.info[0].value and not app.dataframe


@pytest.fixture
def results(tmp_path):
    write_result(tmp_path, "big", "t1", "tile_classification", 0.9, params=300_000_000)
    write_result(tmp_path, "big", "t2", "retrieval", 0.7, main="map@5", params=300_000_000)
    write_result(tmp_path, "small", "t1", "tile_classification", 0.8, params=5_000_000)
    write_result(tmp_path, "small", "t2", "retrieval", status="skipped", reason="no data", main="map@5",
                 params=5_000_000)
    (tmp_path / "small" / "bad.json").write_text("[]")
    return tmp_path


def test_overview_ranks_models_and_shows_gaps(monkeypatch, results):
    write_result(results, "big", "real", "tile_classification", status="skipped", reason="no data on disk")
    write_result(results, "small", "real", "tile_classification", status="skipped", reason="no data on disk")
    app = run_app(monkeypatch, results)
    assert [w.value for w in app.warning if plain("bad.json") not in w.value] == []  # one banner: the broken file
    overview = app.dataframe[0].value
    assert list(overview["model"]) == ["big", "small"]
    # numeric columns stay numeric: a missing score is NaN, shown as a dash (the browser's grid ignores a
    # Styler's display text on a missing value and would print "None"); the caption says where the reason is
    assert pd.api.types.is_float_dtype(overview["t2"]) and pd.isna(overview.loc[1, "t2"])
    assert {d.proto.placeholder for d in app.dataframe} == {"—"}
    assert "— marks a task the model has not scored (the Per task tab says why)" in app.caption[1].value
    assert pd.api.types.is_numeric_dtype(overview["average_rank"]) and overview.loc[0, "t1"] == 0.9
    # scores come first, metadata after; a task no model scored is not a column
    assert list(overview.columns[:4]) == ["#", "average_rank", "model", "mean"] and "real" not in overview
    assert "1 of 2 tasks" in app.caption[1].value and "(t1)" in app.caption[1].value
    hidden = next(d.value for d in app.dataframe if "why" in d.value.columns)
    assert hidden.to_dict("records") == [{"task": "real", "why": "skipped: no data on disk"}]


def test_a_board_whose_every_result_failed_says_why_instead_of_stopping(monkeypatch, tmp_path):
    """A first run whose only task failed (k larger than the training images) left a board with no
    scored task: the Per task tab looked up the task None and the page stopped (KeyError)."""
    write_result(tmp_path, "colour-stats", "myc-task", "tile_classification", status="failed",
                 reason="kNN k=20 is larger than the 10 training images")
    app = run_app(monkeypatch, tmp_path)  # asserts no exception
    assert any("No task has a valid score yet" in info.value for info in app.info)
    assert any("kNN k=20" in str(frame.value.to_dict()) for frame in app.dataframe)


def test_a_local_board_reads_its_files_once_and_again_when_a_run_writes(monkeypatch, results):
    """Every click runs the app's script again; a local board's result files are read, and ranked,
    once per state of the folder (names, sizes, times) and filters, so a click does not re-read
    thousands of files nor rank them again, and a result a run writes, rewrites or removes shows at
    the next click."""
    from harness.leaderboard import aggregate

    reads, builds = [], []
    original, build = aggregate.load_results, aggregate.build_leaderboard
    monkeypatch.setattr(aggregate, "load_results", lambda folder: reads.append(folder) or original(folder))
    monkeypatch.setattr(aggregate, "build_leaderboard", lambda *a, **k: builds.append(1) or build(*a, **k))
    app = run_app(monkeypatch, results)
    app.run()  # a click: nothing changed on disk
    assert app.dataframe[0].value.loc[0, "t1"] == 0.9 and len(reads) == 1 and len(builds) == 1
    write_result(results, "big", "t1", "tile_classification", 0.95, params=300_000_000)  # a run rewrites it
    write_result(results, "new", "t1", "tile_classification", 0.5)  # and scores another model
    app.run()
    overview = app.dataframe[0].value
    assert len(reads) == 2 and overview.loc[0, "t1"] == 0.95 and "new" in set(overview["model"])
    (results / "new" / "t1.json").unlink()
    app.run()
    assert len(reads) == 3 and "new" not in set(app.dataframe[0].value["model"]) and len(builds) == 3
    app.sidebar.text_input[0].input("BIG").run()  # a filter: ranked again, from the files already read
    assert list(app.dataframe[0].value["model"]) == ["big"] and len(builds) == 4 and len(reads) == 3


def test_cells_show_scores_with_intervals_and_reasons():
    """What a cell shows (the Styler's display value) while its data stays a number."""
    from harness.leaderboard.aggregate import Cell

    assert Cell("ok", 0.91234, (0.9, 0.925)).label == "0.912 [0.900, 0.925]"
    assert Cell("ok", 0.5, None, std=0.02).label == "0.500 ± 0.020"
    assert Cell("skipped", reason="no data").label == "skipped: no data"


def test_filters_and_per_task_view(monkeypatch, results):
    app = run_app(monkeypatch, results)
    app.sidebar.slider[0].set_value(10).run()  # hide the 300M model
    assert list(app.dataframe[0].value["model"]) == ["small"]
    app.sidebar.slider[0].set_value(301).run()
    app.sidebar.text_input[0].input("BIG").run()  # search, case-insensitive
    assert list(app.dataframe[0].value["model"]) == ["big"]
    app.sidebar.text_input[0].input("").run()
    app.selectbox[0].select("t1").run()
    per_task = next(d.value for d in app.dataframe if "ci95 low" in d.value.columns)
    assert list(per_task["model"]) == ["big", "small"]
    assert per_task["ci95 low"].iloc[0] == pytest.approx(0.89)
    app.sidebar.multiselect[0].set_value(["retrieval"]).run()
    assert "t1" not in app.dataframe[0].value.columns
    app.sidebar.multiselect[1].set_value(["licence", "hub_id"]).run()  # the column picker
    assert {"licence", "hub_id"} <= set(app.dataframe[0].value.columns) and "coverage" not in app.dataframe[0].value


def test_the_queue_tab_lists_local_requests(monkeypatch, results, tmp_path):
    from harness.submissions import Request, RequestStore
    from harness.timestamps import utc_timestamp

    store = RequestStore(tmp_path / "requests")
    for i, status in enumerate(["FINISHED", "PENDING"]):
        store.save(Request(id=f"r{i}", status=status, model_name=f"lab/m{i}", tasks="all", submitted=f"2026-01-0{i + 1}",
                           updated=utc_timestamp()))
    monkeypatch.setenv("HARNESS_REQUESTS", str(tmp_path / "requests"))
    app = run_app(monkeypatch, results)
    queue = next(d.value for d in app.dataframe if "submitted" in d.value.columns)
    assert list(queue["model"]) == ["lab/m0", "lab/m1"] and list(queue["status"]) == ["FINISHED", "PENDING"]
    assert any("1 FINISHED" in c.value and "1 PENDING" in c.value for c in app.caption)


def test_robustness_panel_shows_plism_groups_and_invariance(monkeypatch, tmp_path):
    import json

    from harness.tasks import FAMILIES

    def described(family: str) -> dict:  # the metric descriptions a run writes (schema 4)
        cls = FAMILIES[family]
        return {name: info.model_dump(mode="json") for name, info in cls.metrics(cls.Params()).items()}

    write_result(tmp_path, "fm", "t1", "tile_classification", 0.8)
    write_result(tmp_path, "fm", "synth-plism", "stain_robustness", 0.4, main="plism_score")
    path = tmp_path / "fm" / "synth-plism.json"
    result = json.loads(path.read_text())
    result["metrics"]["top_10_inter_scanner"] = {"mean": 0.25, "std": 0.0}
    result["metrics"]["cross_domain_drop"] = {"mean": 0.12, "std": 0.01}
    result["metric_info"] = described("stain_robustness")
    path.write_text(json.dumps(result))
    write_result(tmp_path, "fm", "synth-invariance", "transform_invariance", 0.97, main="mean_cosine")
    path = tmp_path / "fm" / "synth-invariance.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "metric_info": described("transform_invariance")}))
    app = run_app(monkeypatch, tmp_path)
    plism = next(d.value for d in app.dataframe if "plism_score" in d.value.columns)
    assert plism["top_10_inter_scanner"].item() == 0.25 and plism["cross_domain_drop"].item() == 0.12
    assert "top_10_both" not in plism.columns  # not reported: no empty column
    invariance = next(d.value for d in app.dataframe if "mean_cosine" in d.value.columns)
    assert invariance["mean_cosine"].item() == 0.97


def test_a_students_heading_names_its_folder_where_two_folders_claim_its_name(monkeypatch, tmp_path):
    """The board shows two folders claiming one model name as 'name [folder]'; the Students tab's
    heading of a report names which of the two it is about in the same way, and only then."""
    import json

    write_result(tmp_path, "teacher", "t1", "tile_classification", 0.9)
    for folder in ("students--tiny", "elsewhere"):
        write_result(tmp_path, folder, "t1", "tile_classification", 0.8)
        path = tmp_path / folder / "t1.json"
        path.write_text(path.read_text().replace(f'"name": "{folder}"', '"name": "students/tiny"'))
    report = {"student": "students--tiny", "student_name": "students/tiny", "method": "feature_kd",
              "teachers": {"teacher": {"tasks": {"t1": {"student": 0.8, "teacher": 0.9, "retention": 88.9}}}}}
    (tmp_path / "students--tiny" / "distillation.json").write_text(json.dumps(report))
    method = f"({plain('feature_kd')})"
    headings = lambda app: [m.value for m in app.markdown if m.value.endswith(method)]  # noqa: E731
    assert headings(run_app(monkeypatch, tmp_path)) == [f"**{plain('students/tiny [students--tiny]')}** {method}"]
    (tmp_path / "elsewhere" / "t1.json").unlink()
    assert headings(run_app(monkeypatch, tmp_path)) == [f"**{plain('students/tiny')}** {method}"]


def test_student_and_matryoshka_views(monkeypatch, tmp_path):
    import json

    write_result(tmp_path, "teacher", "t1", "tile_classification", 0.9, params=300_000_000)
    write_result(tmp_path, "student", "t1", "tile_classification", 0.81, params=5_000_000)
    for dim, value in ((32, 0.6), (64, 0.75)):
        write_result(tmp_path, f"student-d{dim}", "t1", "tile_classification", value)
        path = tmp_path / f"student-d{dim}" / "t1.json"
        result = json.loads(path.read_text())
        result["model"]["name"], result["model"]["embed_dim"] = f"student@{dim}d", dim
        path.write_text(json.dumps(result))
    report = {"student": "student", "method": "feature_kd", "teachers": {"teacher": {
        "tasks": {"t1": {"student": 0.81, "teacher": 0.9, "retention": 90.0}}, "median_retention": 90.0,
        "parameters": {"student": 5_000_000, "teacher": 300_000_000}, "items_per_s": {"student": 60, "teacher": 5}}},
        "fidelity": {"teacher": {"one_minus_mean_cosine": 0.1, "variance_over_mse": 3.0}}}
    (tmp_path / "student" / "distillation.json").write_text(json.dumps(report))
    app = run_app(monkeypatch, tmp_path)
    assert not app.warning  # the distillation report is not taken for a broken result file
    assert not any("held-out items" in c.value for c in app.caption)  # no curves in the report: no loss chart
    charts_before = len(app.get("vega_lite_chart"))
    report["training"] = {"loss_curve": [{"step": 100, "loss": 0.5}, {"step": 200, "loss": 0.25}],
                          "held_out_curve": [{"step": 100, "loss": 0.6}, {"step": 200, "loss": 0.4}]}
    (tmp_path / "student" / "distillation.json").write_text(json.dumps(report))
    app = run_app(monkeypatch, tmp_path)
    assert not app.warning and any("held-out items" in c.value for c in app.caption)
    assert len(app.get("vega_lite_chart")) == charts_before + 1  # the student's loss curves
    from harness.leaderboard.student_tables import training_curves
    assert [(r["curve"], r["step"], r["loss"]) for r in training_curves(report)] == [
        ("training", 100, 0.5), ("training", 200, 0.25), ("held-out", 100, 0.6), ("held-out", 200, 0.4)]
    assert "Score against embedding dims (Matryoshka)" in [h.value for h in app.subheader]
    retention = next(d.value for d in app.dataframe if "retention %" in d.value.columns)
    assert retention["retention %"].item() == 90.0
    assert retention["throughput (student / teacher)"].item() == pytest.approx(12.0)
    # an error-like main score: no ratio, its normalised retention shown (and a NaN one refused)
    report["teachers"]["teacher"]["tasks"]["t3"] = {"student": 0.2, "teacher": 0.1, "retention": None,
                                                    "noise": 0.5, "normalised_retention": 75.0}
    (tmp_path / "student" / "distillation.json").write_text(json.dumps(report))
    app = run_app(monkeypatch, tmp_path)
    assert not app.warning and not app.exception
    retention = next(d.value for d in app.dataframe if "retention %" in d.value.columns).set_index("task")
    assert pd.isna(retention.loc["t3", "retention %"]) and retention.loc["t3", "normalised retention %"] == 75.0
    from harness.leaderboard.student_tables import read_distillation_report
    report["teachers"]["teacher"]["tasks"]["t3"]["normalised_retention"] = float("nan")
    (tmp_path / "student" / "distillation.json").write_text(json.dumps(report))
    with pytest.raises(ValueError, match="normalised retention"):
        read_distillation_report(tmp_path / "student" / "distillation.json")
    del report["teachers"]["teacher"]["tasks"]["t3"]
    (tmp_path / "student" / "distillation.json").write_text(json.dumps(report))
    from harness.leaderboard.student_tables import retention_rows
    report["teachers"]["teacher"].update(tiles_per_slide={"student": 1.0, "teacher": 8.0},
                                         slides_per_min={"student": 300.0, "teacher": 15.0})
    row = retention_rows(report)[0]
    assert row["tiles per slide (student / teacher)"] == 0.125 and row["slides/min (student / teacher)"] == 20.0
    from harness.leaderboard.aggregate import load_results
    from harness.leaderboard.student_tables import matryoshka_curves
    write_result(tmp_path, "student", "t2", "retrieval", 0.5, main="map@5")  # no truncated run: no curve
    rows = matryoshka_curves(load_results(tmp_path)[0])
    assert [(r["task"], r["dim"], r["score"]) for r in rows] == [("t1", 8, 0.81), ("t1", 32, 0.6), ("t1", 64, 0.75)]


def test_published_tables_show_each_suite_aggregate_and_what_it_mirrors(monkeypatch, tmp_path):
    write_result(tmp_path, "fm", "plism", "stain_robustness", 0.48, main="plism_score")
    write_result(tmp_path, "other", "plism", "stain_robustness", 0.33, main="plism_score")
    app = run_app(monkeypatch, tmp_path)
    suites = next(d.value for d in app.dataframe if "plismbench" in d.value.columns)
    assert list(suites["model"]) == ["fm", "other"] and list(suites["plismbench"]) == [0.48, 0.33]
    assert list(suites["plismbench scored"]) == ["1/1", "1/1"]
    about = " ".join(m.value for m in app.markdown)
    assert "plism" in about and "leaderboard score" in about and "HEST" in about


def test_head_to_head_tab_compares_the_chosen_models(monkeypatch, tmp_path):
    """Two models with paired replicates on t1 (big clearly ahead) and none on t2: the tab shows
    the win with its interval, the unpaired task without a verdict, and the tally."""
    import numpy as np

    noise = np.random.default_rng(0).normal(0, 0.01, 200)
    write_result(tmp_path, "big", "t1", "tile_classification", 0.9, replicates=0.9 + noise)
    write_result(tmp_path, "small", "t1", "tile_classification", 0.8, replicates=0.8 + noise)
    write_result(tmp_path, "big", "t2", "retrieval", 0.7, main="map@5")
    write_result(tmp_path, "small", "t2", "retrieval", 0.6, main="map@5")
    app = run_app(monkeypatch, tmp_path)
    table = next(d.value for d in app.dataframe if "big vs small" in d.value.columns)
    rows = dict(zip(table["task"], table["big vs small"]))
    assert rows["t1"].startswith("win +0.100") and rows["t2"] == "not paired +0.100"
    assert rows["wins / ties / losses"] == "1 / 0 / 0"
    picker = next(m for m in app.multiselect if m.label.startswith("Models (2 to 5)"))
    picker.set_value(["big"]).run()
    assert any("Pick 2 to 5 models" in i.value for i in app.info)


def test_per_task_view_shows_the_probe_s_calibration_and_its_reliability_diagram(monkeypatch, tmp_path):
    """A tile-classification result with the family's calibration metrics and reliability bins: the
    Per task tab shows them (lower is better, marked), the diagram's points read from the result; a
    second model's hostile diagram (a string where a number belongs) is left out, its table row kept."""
    import json

    from harness.tasks import FAMILIES

    cls = FAMILIES["tile_classification"]
    described = {name: info.model_dump(mode="json") for name, info in cls.metrics(cls.Params()).items()}
    diagram = {"lower": [0.0, 0.2, 0.4, 0.6, 0.8], "upper": [0.2, 0.4, 0.6, 0.8, 1.0], "items": [0, 3, 10, 20, 67],
               "confidence": [None, 0.35, 0.52, 0.71, 0.93], "accuracy": [None, 0.33, 0.4, 0.6, 0.9]}
    for model, ece, bins in (("calibrated", 0.04, diagram), ("hostile", 0.2, {**diagram, "accuracy": ["x"] * 5})):
        write_result(tmp_path, model, "t1", "tile_classification", 0.8)
        path = tmp_path / model / "t1.json"
        result = json.loads(path.read_text())
        result["metrics"].update({"ece": {"mean": ece, "std": 0.0}, "mce": {"mean": 2 * ece, "std": 0.0}})
        result["metric_info"] = described
        result["details"] = {"reliability": bins}
        path.write_text(json.dumps(result))
    app = run_app(monkeypatch, tmp_path)
    table = next(d.value for d in app.dataframe if "ece" in d.value.columns)
    assert table.set_index("model")["ece"].to_dict() == {"calibrated": 0.04, "hostile": 0.2}
    assert "mce" in table.columns and "ace" not in table.columns  # not reported: no empty column
    assert any("Calibration of the probe" in m.value for m in app.markdown)

    from harness.leaderboard.aggregate import load_results
    from harness.leaderboard.family_tables import reliability_rows

    points = reliability_rows(load_results(tmp_path)[0], "t1")
    assert {p["model"] for p in points} == {"calibrated"} and len(points) == 4  # the empty bin is no point
    assert points[-1] == {"model": "calibrated", "confidence": 0.93, "accuracy": 0.9, "items": 67}


def test_per_task_view_draws_the_few_shot_curve_from_the_results(monkeypatch, tmp_path):
    import json

    write_result(tmp_path, "fm", "t1", "tile_classification", 0.8)
    path = tmp_path / "fm" / "t1.json"
    result = json.loads(path.read_text())
    result["metrics"].update({"fewshot1_balanced_accuracy": {"mean": 0.5, "std": 0.1, "ci95": [0.3, 0.7]},
                              "fewshot16_balanced_accuracy": {"mean": 0.8, "std": 0.02, "ci95": [0.76, 0.84]},
                              "fewshot4_balanced_accuracy": {"mean": 7.0, "std": 0.0},  # out of range: left out
                              "fewshot8_balanced_accuracy": {"mean": 0.7, "std": 0.0, "ci95": [0.6, 1e30]}})
    path.write_text(json.dumps(result))
    app = run_app(monkeypatch, tmp_path)
    assert any("Few-shot (SimpleShot)" in m.value for m in app.markdown)

    from harness.leaderboard.aggregate import load_results
    from harness.leaderboard.family_tables import few_shot_rows

    rows = few_shot_rows(load_results(tmp_path)[0], "t1")
    assert [(r["shots"], r["score"], r["low"]) for r in rows] == [(1, 0.5, 0.3), (8, 0.7, None), (16, 0.8, 0.76)]


def test_tables_download_as_csv_and_a_formula_in_a_name_is_not_run(monkeypatch, results):
    """Each main view has a CSV download of its values; a model name from a result file that a
    spreadsheet would run as a formula is written inert (a leading apostrophe)."""
    from harness.leaderboard.formatting import csv_text

    app = run_app(monkeypatch, results)
    buttons = app.get("download_button")
    assert [b.proto.label for b in buttons] == ["Download CSV"] * 3  # overview, per task, head to head
    assert {b.proto.help.split(":")[0] for b in buttons} == {"leaderboard.csv", "task-t1.csv", "head-to-head.csv"}
    frame = pd.DataFrame({"model": ["=HYPERLINK(\"http://x\")", "+1", "plain", "-2 dims"], "score": [0.5, -1.0, 2.0, 3.0]})
    text = csv_text(frame).decode()
    assert text.splitlines() == ["model,score", "\"'=HYPERLINK(\"\"http://x\"\")\",0.5", "'+1,-1.0", "plain,2.0",
                                 "'-2 dims,3.0"]
    assert pd.read_csv(__import__("io").StringIO(text))["score"].tolist() == [0.5, -1.0, 2.0, 3.0]


def test_few_shot_bands_are_not_stacked():
    """Each model's band spans its own interval: Vega-Lite stacks areas unless told not to, which
    piled one model's band on another's and stretched the axis (seen in the browser)."""
    from harness.leaderboard import charts

    frame = pd.DataFrame([{"model": m, "shots": k, "score": 0.5, "low": 0.4, "high": 0.6}
                          for m in ("a", "b") for k in (1, 2, 4)])
    band, line = charts.few_shot_curves(frame).to_dict()["layer"]
    assert band["mark"]["type"] == "area" and band["encoding"]["y"]["stack"] is None
    assert band["encoding"]["color"]["legend"] is None and line["encoding"]["color"]["legend"] is not None


def test_training_data_overlap_is_marked_and_can_be_left_out(monkeypatch, tmp_path):
    """A TCGA-pretrained model on two TCGA tasks: its cells say so, its no-overlap share counts
    them, and the sidebar's filter drops those results (and one whose overlap is unknown): the
    ranks, recomputed on what is left, change."""
    def result(slug, task, value, overlap):
        write_result(tmp_path, slug, task, "tile_classification", value, training_overlap=overlap)

    for task in ("tcga-a", "tcga-b"):
        result("tcga-trained", task, 0.95, ["TCGA"])
        result("clean", task, 0.80, [])
        result("undeclared", task, 0.60, None)
    result("tcga-trained", "other", 0.70, [])
    result("clean", "other", 0.75, [])
    result("undeclared", "other", 0.60, None)
    app = run_app(monkeypatch, tmp_path)
    frame = app.dataframe[0].value
    assert list(frame["model"]) == ["tcga-trained", "clean", "undeclared"]  # first on both TCGA tasks
    shares = dict(zip(frame["model"], frame["no_overlap"]))
    assert shares == {"tcga-trained": "1 of 3", "clean": "3 of 3", "undeclared": "0 of 3 (3 unknown)"}
    from harness.leaderboard.aggregate import OVERLAP_MARK, Cell

    assert Cell("ok", 0.95, (0.94, 0.96), overlap=["TCGA"]).label == f"0.950 [0.940, 0.960] {OVERLAP_MARK} TCGA"
    assert Cell("ok", 0.80, (0.79, 0.81), overlap=[]).label == "0.800 [0.790, 0.810]"
    assert "⚠ marks a score whose test images come from a collection" in app.caption[1].value
    listed = next(c.value for c in app.caption if "score(s) shown test on images" in c.value)
    assert f"{plain('tcga-trained')} on {plain('tcga-a')} (TCGA)" in listed and f"on {plain('tcga-b')}" in listed

    app.sidebar.toggle[-1].set_value(True).run()
    frame = app.dataframe[0].value
    assert list(frame["model"]) == ["clean", "tcga-trained"]  # the unknown one is gone; clean now leads
    assert pd.isna(frame.set_index("model").loc["tcga-trained", "tcga-a"])  # its overlapping score is left out


def test_a_published_dataset_whose_splits_share_images_is_named_under_the_table(monkeypatch, tmp_path):
    """The run counts a Hub dataset's test items whose image is a training image (it cannot refuse a
    published benchmark) and records it; the board says so once per task, with the test split's
    size, and a hostile count in a result's free-form details is not shown."""
    copies = {"copies_across_splits": {"test": 2}}
    for slug, value in (("a", 0.9), ("b", 0.8)):
        write_result(tmp_path, slug, "crc-100k", "tile_classification", value,
                     details=copies, n_samples={"train": 36, "test": 9})
        write_result(tmp_path, slug, "pcam", "tile_classification", value - 0.1,
                     details={"copies_across_splits": {"test": "12; <b>x</b>"}})  # not a count: not shown
        write_result(tmp_path, slug, "bach", "tile_classification", value - 0.2)
    app = run_app(monkeypatch, tmp_path)
    [said] = [c.value for c in app.caption if "Published splits" in c.value]
    assert f"{plain('crc-100k')} (2 of 9 test items)" in said and "pcam" not in said and "bach" not in said
    from harness.leaderboard.aggregate import split_copies_by_task
    from harness.results import TaskResult

    def result(details):
        return TaskResult.model_validate({"task": "t", "task_version": 1, "family": "f", "status": "ok",
                                          "model": {"name": "m"}, "dataset": {"name": "t", "source": "hf"},
                                          "main_score": {"name": "s", "value": 0.5}, "details": details})

    assert split_copies_by_task([result({"copies_across_splits": {"val": 1, "test": 3}})]) == \
        {"t": "1 val item, 3 test items"}
    for hostile in ({"test": True}, {"test": -1}, {"test": 10**12}, [3], {str(i): 1 for i in range(9)}):
        assert split_copies_by_task([result({"copies_across_splits": hostile})]) == {}


def test_lineage_places_students_under_their_teachers_with_retention():
    from harness.leaderboard.aggregate import lineage_order

    names = ["big", "other", "student", "grand-student", "orphan"]
    teachers = [[], [], ["missing-teacher", "big"], ["student"], ["not-shown"]]
    order, retention = lineage_order(names, teachers, [0.9, 0.8, 0.72, 0.36, 0.5])
    assert [names[i] for i in order] == ["big", "student", "grand-student", "other", "orphan"]
    assert retention == [None, pytest.approx(80.0), pytest.approx(50.0), None, None]
    # a loop of teachers (a hand-edited card) is placed in rank order, never lost or repeated
    order, retention = lineage_order(["a", "b"], [["b"], ["a"]], [0.5, 0.4])
    assert order == [0, 1] and len(retention) == 2


def test_the_lineage_toggle_regroups_rows_and_keeps_the_ranks(monkeypatch, tmp_path):
    write_result(tmp_path, "teacher", "t1", "tile_classification", 0.9)
    write_result(tmp_path, "middle", "t1", "tile_classification", 0.8)
    write_result(tmp_path, "student", "t1", "tile_classification", 0.72,
                 model={"name": "student", "weights": "checkpoint", "n_parameters": 10, "teachers": ["teacher"]})
    app = run_app(monkeypatch, tmp_path)
    assert list(app.dataframe[0].value["model"]) == ["teacher", "middle", "student"]
    toggle = next(t for t in app.sidebar.toggle if t.label == "Students under their teachers")
    toggle.set_value(True).run()
    frame = app.dataframe[0].value
    assert list(frame["model"]) == ["teacher", "student", "middle"]
    assert list(frame["average_rank"]) == [1.0, 3.0, 2.0]  # the ranks themselves do not change
    assert frame["retention"].iloc[1] == pytest.approx(80.0) and pd.isna(frame["retention"].iloc[0])
    assert "each distilled student sits under its teacher" in app.caption[1].value


def test_family_small_multiples_one_panel_per_family(monkeypatch, tmp_path):
    from harness.leaderboard import charts

    frame = pd.DataFrame({"model": ["big", "small", "big", "small"], "family": ["tiles", "tiles", "retrieval", "retrieval"],
                          "mean": [0.9, 0.8, 0.7, None]})
    spec = charts.family_small_multiples(frame).to_dict()
    assert spec["facet"]["field"] == "family" and spec["columns"] == 4
    assert spec["spec"]["encoding"]["y"]["sort"] == ["big", "small"]  # the same model order in every panel
    assert len(spec["datasets"][next(iter(spec["datasets"]))]) == 3  # the missing mean is left out
    for model, (t1, t2) in {"big": (0.9, 0.7), "small": (0.8, 0.6)}.items():
        write_result(tmp_path, model, "t1", "tile_classification", t1)
        write_result(tmp_path, model, "t2", "retrieval", t2, main="map@5")
    app = run_app(monkeypatch, tmp_path)  # two families scored by both: the panels are drawn
    assert "Per family" in [h.value for h in app.subheader]


def test_per_task_view_puts_the_best_first_when_lower_is_better(monkeypatch, tmp_path):
    """A task whose main score is an error (ECE): the Per task table and bars list the smallest
    error first, and the caption says which way the score runs."""
    ece = {"ece": {"higher_is_better": False, "bounds": [0.0, 1.0], "group": "calibration"}}
    for model, error in (("overconfident", 0.3), ("calibrated", 0.05), ("middling", 0.1)):
        write_result(tmp_path, model, "err", "tile_classification", error, main="ece", metric_info=ece)
    app = run_app(monkeypatch, tmp_path)
    assert any("a lower-is-better one as low + high - score (1 - score in [0, 1]: err)" in c.value for c in app.caption)
    app.selectbox[0].select("err").run()
    per_task = next(d.value for d in app.dataframe if "ci95 low" in d.value.columns)
    assert list(per_task["model"]) == ["calibrated", "middling", "overconfident"]
    assert any("main score: ece, lower is better" in c.value for c in app.caption)
    from harness.leaderboard import charts
    spec = charts.task_bars(per_task, "ece", higher_is_better=False).to_dict()
    assert spec["layer"][0]["encoding"]["y"]["sort"] == "x"
