"""Hostile result files, one row each: what a hand-edited or malicious file holds, and what the board
must do with it. Two honest models (a ahead of b) sit beside every row; the hostile file may be
shown as invalid or skipped with a warning naming it, but it never stops the board, never makes
a rank NaN, never takes first place, and never renders as markdown.
"""

import json
import os
import shutil
import math
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from harness.leaderboard.aggregate import build_leaderboard, load_results
from harness.leaderboard.formatting import plain
from harness.tasks import FAMILIES
from tests.support.result_files import write_result

APP = str(Path(__file__).resolve().parents[2] / "leaderboard" / "app.py")
FLIPPED = {"balanced_accuracy": {"higher_is_better": False, "bounds": [0.0, 1.0], "group": "score"}}


def honest(root: Path) -> None:
    for model, (t1, t2) in {"a": (0.9, 0.8), "b": (0.7, 0.6)}.items():
        write_result(root, model, "t1", "tile_classification", t1, replicates=[t1 - 0.01, t1, t1 + 0.01])
        write_result(root, model, "t2", "retrieval", t2, main="map@5", replicates=[t2 - 0.01, t2, t2 + 0.01])


def rows():
    """(name, writer of the hostile file(s), how the board shows it: 'invalid' | 'skipped' | 'apart' |
    'fixed' | 'report', the text the warning about it must hold)."""
    def ok_t1(slug, value, **overrides):
        return lambda root: (write_result(root, slug, "t1", "tile_classification", value, **overrides),
                             write_result(root, slug, "t2", "retrieval", 0.1, main="map@5"))

    yield "status ok, value null", ok_t1("evil", None), "invalid", "main score balanced_accuracy is None"
    yield ("400 kB of nested brackets (json.loads raised RecursionError: the board stopped)", lambda root: (
        root / "evil").mkdir() or (root / "evil" / "t1.json").write_text("[" * 200_000 + "]" * 200_000),
        "skipped", "evil/t1.json: skipped, not a valid result file")
    yield "NaN score", ok_t1("evil", float("nan")), "invalid", "is nan"
    yield "inf score", ok_t1("evil", float("inf")), "invalid", "is inf"
    yield "7.0 on a [0, 1] metric", ok_t1("evil", 7.0), "invalid", "outside its bounds"
    yield "a negative score", ok_t1("evil", -3.0), "invalid", "outside its bounds"
    yield ("lower-is-better claimed for balanced accuracy", ok_t1("evil", 0.01, metric_info=FLIPPED), "invalid",
           "lower is better, against its family")
    yield ("another family claimed for the task", lambda root: (
        write_result(root, "evil", "t1", "survival", 0.99, main="c_index"),
        write_result(root, "evil", "t2", "retrieval", 0.1, main="map@5")), "invalid",
           "the task's other results say 'tile_classification'")
    yield ("1e30 parameters", ok_t1("evil", 0.5, model={"name": "evil", "n_parameters": 1e30}), "skipped",
           "n_parameters")
    yield ("a 2 MB model name", ok_t1("evil", 0.5, model={"name": "e" * 2_000_000}), "skipped", "model.name")
    yield ("a folder that is not a slug", lambda root: write_result(root, ".evil", "t1", "tile_classification", 0.99),
           "skipped", "the folder name is not a model slug")
    yield ("a file name that is not its task", lambda root: (
        write_result(root, "evil", "t1", "tile_classification", 0.99),
        (root / "evil" / "t1.json").rename(root / "evil" / "t9.json")), "skipped", "holds task 't1'")
    yield ("a second folder claiming model a's name", lambda root: (
        write_result(root, "impostor", "t1", "tile_classification", 0.99, model={"name": "a"}),
        write_result(root, "impostor", "t2", "retrieval", 0.99, main="map@5", model={"name": "a"})), "apart",
        "model name 'a' is claimed by the folders a, impostor")
    yield ("NaN replicates", ok_t1("evil", 0.5, main_score={"name": "balanced_accuracy", "value": 0.5,
                                                            "replicates": [0.5, float("nan"), 0.4]}), "fixed", "")
    yield ("markdown in the model name", ok_t1("evil", 0.5, model={"name": "[click](https://evil.example) ![x](y)"}),
           "markdown", "")
    yield ("a 1 MB training-overlap entry", ok_t1("evil", 0.5, training_overlap=["T" * 1_000_000]), "skipped",
           "training_overlap")
    yield ("training data that is not a list", ok_t1("evil", 0.5, model={"name": "evil", "training_data": "TCGA"}),
           "skipped", "model.training_data")
    yield ("a model whose every result is skipped or invalid", lambda root: (
        write_result(root, "evil", "t1", "tile_classification", status="skipped", reason="no data at /x"),
        write_result(root, "evil", "t2", "retrieval", 0.5, main="NaN")), "unranked", "")
    yield ("a file name that is not UTF-8", lambda root: (
        write_result(root, "evil", "t1", "tile_classification", 0.99),
        os.rename(root / "evil" / "t1.json", os.fsencode(root / "evil") + b"/t\xff.json")), "skipped", "holds task 't1'")
    yield ("a FIFO named as a result file (reading it waited for a writer for ever)", lambda root: (
        root / "evil").mkdir() or os.mkfifo(root / "evil" / "t1.json"), "skipped", "not a regular file")
    yield ("a report of nested brackets", lambda root: (root / "a" / "distillation.json").write_text(
        "[" * 200_000 + "]" * 200_000), "report", "not a distillation report")
    yield ("a broken distillation report", lambda root: (root / "a" / "distillation.json").write_text(
        json.dumps({"student": "a", "teachers": {"b": "not a table"}})), "report", "not a distillation report")
    for what, curve in (("a NaN loss", [{"step": 1, "loss": float("nan")}]),
                        ("a 20,000-point loss curve", [{"step": i, "loss": 1.0} for i in range(20_000)]),
                        ("a negative step", [{"step": -5, "loss": 1.0}]),
                        ("a step of 1e30", [{"step": 10**30, "loss": 1.0}])):  # crashed the page's chart
        yield (f"{what} in a distillation report's curve", lambda root, curve=curve: (
            root / "a" / "distillation.json").write_text(json.dumps(
                {"student": "a", "teachers": {}, "training": {"held_out_curve": curve}})),
            "report", "not a distillation report")


@pytest.mark.parametrize("name,write,shown,text", list(rows()), ids=[r[0] for r in rows()])
def test_each_hostile_file_is_contained(tmp_path, name, write, shown, text):
    honest(tmp_path)
    write(tmp_path)
    loaded, warnings = load_results(tmp_path)
    board = build_leaderboard(loaded, warnings, families=FAMILIES)
    ranks = board.average_rank()
    assert all(math.isfinite(ranks[m]) for m in board.compared_models) and {"a", "b"} <= set(board.compared_models)
    first = board.ranked_models()[0]
    if shown != "apart":  # (an impostor's honest score may rank first, but only under its own folder's name)
        assert board.model_info[first]["name"] == "a", f"{first} ranked first"
    uncertainty = board.rank_uncertainty()
    assert uncertainty is not None and all(math.isfinite(v) for v in [*uncertainty.low, *uncertainty.high])
    if shown == "invalid":
        assert board.cells[("evil", "t1")].status == "invalid"
        assert any(w.startswith("evil/t1.json") and text in w for w in board.warnings), board.warnings
        assert "t1" not in board.common_tasks and "t2" in board.common_tasks
    elif shown == "skipped":
        assert any(text in w for w in board.warnings), board.warnings
        assert not any(slug in ("evil", ".evil") and task == "t1" and c.status == "ok"
                       for (slug, task), c in board.cells.items())
    elif shown == "apart":
        assert any(text in w for w in board.warnings)
        assert {board.model_info[m]["name"] for m in board.models} == {"a [a]", "a [impostor]", "b"}
    elif shown == "unranked":  # listed, but it cannot empty the common tasks: a and b keep their ranks
        assert board.common_tasks == ["t1", "t2"] and board.compared_models == ["a", "b"]
        assert math.isnan(board.average_rank()["evil"]) and board.ranked_models()[-1] == "evil"
        assert board.mean("evil") is None and uncertainty.models == ["a", "b"]
        assert [row["borda_rank"] for row in board.overview()] == [1, 2, None]
    elif shown == "fixed":
        assert "t1" in uncertainty.fixed_tasks and board.cells[("evil", "t1")].status == "ok"
    if shown in ("invalid", "skipped", "apart", "fixed", "markdown", "report", "unranked"):
        app = run_app(tmp_path)
        if text:
            assert any(plain(text) in w.value for w in app.warning), [w.value for w in app.warning]
        if shown == "markdown":  # wherever a name is written as markdown, it is escaped
            markdown = [e.value for e in (*app.markdown, *app.caption, *app.warning)]
            assert not any("](https://evil" in v or "![x]" in v for v in markdown), markdown


def run_app(folder: Path) -> AppTest:
    import os

    os.environ["HARNESS_RESULTS"] = str(folder)
    try:
        app = AppTest.from_file(APP, default_timeout=60)
        app.run()
        assert not app.exception, app.exception
        for tab in app.tabs:  # every tab is built in one run; its elements are there to read
            assert tab is not None
        return app
    finally:
        del os.environ["HARNESS_RESULTS"]


HOSTILE_VALUES = [None, "", "x" * 5000, -1e308, 1e308, float("nan"), float("inf"), -float("inf"), [], {}, True, 0, -1,
                  10**30, [[[[1]]]], {"a": {"b": None}}, "NaN", "../../etc/passwd", [None] * 3, [1e308] * 5, "1",
                  [0.5, "x"], "[x](https://evil.example)"]


def _leaves(item, path=()):
    yield path
    if isinstance(item, dict):
        for key, value in item.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(item, list):
        for index, value in enumerate(item[:4]):
            yield from _leaves(value, (*path, index))


def _mutated(document: dict, rng) -> dict:
    """A copy with one to three fields (anywhere: a metric's interval, a detail, the model block)
    replaced by a hostile value or removed."""
    document = json.loads(json.dumps(document))
    for _ in range(rng.randint(1, 3)):
        path = rng.choice([p for p in _leaves(document) if p])
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and rng.random() < 0.15:
            del parent[path[-1]]
        else:
            parent[path[-1]] = json.loads(json.dumps(rng.choice(HOSTILE_VALUES)))
    return document


def test_no_field_of_a_result_file_can_stop_the_board(tmp_path):
    """Seeded mutations of realistic result files (few-shot metrics, a reliability diagram, a
    robustness group, a distilled student's lineage): whatever one to three fields hold, the board
    is built, its ranks and rank intervals stay finite, and every view's rows are computed; the app
    runs without an exception on a sample of them. (The table above pins what each known case shows.)"""
    import random

    from harness.leaderboard.aggregate import lineage_order
    from harness.leaderboard.family_tables import few_shot_rows, group_tables, reliability_rows
    from harness.leaderboard.student_tables import matryoshka_curves
    from harness.leaderboard.head_to_head import head_to_head

    reliability = {"confidence": [0.15, None, 0.8], "accuracy": [0.2, None, 0.75], "items": [4, 0, 12]}
    extra_metrics = {"fewshot1_balanced_accuracy": {"mean": 0.4, "std": 0.1, "ci95": [0.3, 0.5]},
                     "ece": {"mean": 0.05, "std": 0.0, "ci95": [0.03, 0.07]}}
    metric_info = {"balanced_accuracy": {"higher_is_better": True, "bounds": [0.0, 1.0], "group": "score"},
                   "fewshot1_balanced_accuracy": {"group": "few-shot"},
                   "ece": {"higher_is_better": False, "bounds": [0.0, 1.0], "group": "calibration"}}
    template = tmp_path / "template"
    honest(template)
    for slug in ("a", "b"):
        path = template / slug / "t1.json"
        document = json.loads(path.read_text())
        document["metrics"].update(extra_metrics)
        document.update(metric_info=metric_info, details={"reliability": reliability})
        document["model"]["teachers"] = ["a"] if slug == "b" else []
        path.write_text(json.dumps(document))
    documents = {name: json.loads((template / "a" / name).read_text()) for name in ("t1.json", "t2.json")}
    rng = random.Random(20261206)
    for case in range(150):
        root = tmp_path / f"case{case}"
        shutil.copytree(template, root)
        (root / "evil").mkdir()
        for name, document in documents.items():
            (root / "evil" / name).write_text(json.dumps(_mutated(document, rng)))
        loaded, warnings = load_results(root)
        board = build_leaderboard(loaded, warnings, families=FAMILIES)
        ranks = board.average_rank()
        assert {"a", "b"} <= set(board.compared_models) and board.common_tasks, case
        assert all(math.isfinite(ranks[m]) for m in board.compared_models), (case, ranks)
        uncertainty = board.rank_uncertainty()
        assert uncertainty is None or all(math.isfinite(v) for v in [*uncertainty.low, *uncertainty.high]), case
        ranked = board.ranked_models()
        means = [row["mean"] for row in board.overview()]
        lineage_order([board.model_info[m]["name"] for m in ranked], [board.model_info[m]["teacher_names"] for m in ranked],
                      [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in means])
        board.cell_labels()
        for task in board.tasks:
            few_shot_rows(loaded, task)
            reliability_rows(loaded, task)
        for group in ("calibration", "few-shot", "robustness"):
            group_tables(loaded, group)
        matryoshka_curves(loaded)
        if len(ranked) >= 2:
            head_to_head(board, ranked[:2])
        if case % 25 == 0:
            run_app(root)


def test_no_field_of_a_real_result_of_any_family_can_stop_the_board(instrument_results, tmp_path):
    """The same mutations on the real result files of every family (the instruments' run of the
    synthetic suite: segmentation, gene expression, PLISM, PathoROB... each with its own details),
    judged against the registry as the Space judges them (stale params and versions) and summed
    into the suites' tables: the board and every panel beside it are built, and the model whose
    files are unchanged stays on it. (Fails when the board's None check of a main score is removed.)"""
    import random

    from harness.leaderboard.aggregate import suite_rows
    from harness.leaderboard.family_tables import few_shot_rows, group_tables, reliability_rows
    from harness.leaderboard.student_tables import matryoshka_curves
    from harness.registry import load_registry

    registry = load_registry([], families=FAMILIES)
    registered = {name: (task.family, task.main_score, task.params, task.version)
                  for name, task in registry.tasks.items()}
    originals = [json.loads(p.read_text()) for p in sorted(Path(instrument_results).glob("*/*.json"))]
    originals = [d for d in originals if d.get("status") == "ok"]
    assert len({d["family"] for d in originals}) >= 10  # every family's details are in play
    rng = random.Random(20261207)
    failures = []
    for case in range(100):
        root = tmp_path / f"case{case}"
        for model in ("honest", "changed-1", "changed-2"):
            for document in rng.sample(originals, 6):
                document = dict(document, model={**document["model"], "name": model})
                # named as the harness names it, by the task it was written for: what is mutated is what
                # the file holds (a task field of 5,000 characters or '../../etc/passwd' is no file name)
                file_name = f"{document['task']}.json"
                if model != "honest":
                    document = _mutated(document, rng)
                (root / model).mkdir(parents=True, exist_ok=True)
                (root / model / file_name).write_text(json.dumps(document))
        try:
            loaded, _ = load_results(root)
            board = build_leaderboard(loaded, families=FAMILIES, registered=registered)
            board.overview(), board.cell_labels(), board.rank_uncertainty(), board.borda()
            valid = board.valid(loaded)
            for task in board.tasks:
                few_shot_rows(valid, task), reliability_rows(valid, task)
            group_tables(valid, "robustness"), matryoshka_curves(loaded), suite_rows(board, registry.suite_specs)
            if "honest" not in {board.model_info[m]["name"] for m in board.models}:
                failures.append(f"case {case}: the model whose files are unchanged is not on the board")
        except Exception as error:  # noqa: BLE001 - every case is tried; the failures are listed together
            failures.append(f"case {case}: {type(error).__name__}: {error}"[:300])
    assert not failures, "\n".join(failures)


def partial_submission(root: Path) -> None:
    """Three honest models on three tasks (a ahead of b and c on t2 and t3), and a submission that
    scored only t1, best there, and failed the rest: without a declared task set it narrows the
    common tasks to t1 for everyone and takes first place."""
    for model, scores in {"a": (0.5, 0.9, 0.9), "b": (0.6, 0.7, 0.7), "c": (0.7, 0.6, 0.6)}.items():
        for task, value in zip(("t1", "t2", "t3"), scores):
            write_result(root, model, task, "tile_classification", value)
    write_result(root, "partial", "t1", "tile_classification", 0.99)
    for task in ("t2", "t3"):
        write_result(root, "partial", task, "tile_classification", status="failed", reason="out of memory")
    write_result(root, "partial", "t9", "tile_classification", 0.99)  # a task the board does not declare


def test_a_partial_submission_reorders_an_undeclared_board_but_not_a_declared_one(tmp_path):
    partial_submission(tmp_path)
    loaded, warnings = load_results(tmp_path)
    undeclared = build_leaderboard(loaded, warnings, families=FAMILIES)
    assert undeclared.common_tasks == ["t1"] and undeclared.ranked_models()[0] == "partial"  # what declaring prevents

    board = build_leaderboard(loaded, warnings, families=FAMILIES, board_tasks=["t1", "t2", "t3"])
    assert board.tasks == ["t1", "t2", "t3"]  # t9 is not the board's: not shown
    assert board.compared_models == ["a", "b", "c"] and board.ranked_models() == ["a", "b", "c", "partial"]
    assert math.isnan(board.average_rank()["partial"]) and board.mean("partial") is None
    assert board.unranked_reason("partial") == "no valid score on 2 of the board's 3 tasks (t2, t3)"
    alone = build_leaderboard([(s, r) for s, r in loaded if s != "partial"], families=FAMILIES,
                              board_tasks=["t1", "t2", "t3"])
    assert board.average_rank() | {"partial": 0} == alone.average_rank() | {"partial": 0}  # as if it were not there

    # a declared task nobody has scored yet: nobody is ranked, and the board says why
    pending = build_leaderboard(loaded, warnings, families=FAMILIES, board_tasks=["t1", "t2", "t3", "t4"])
    assert pending.compared_models == [] and pending.unscored_tasks["t4"] == "no result yet"
    assert "t4" in pending.unranked_reason("a")


def test_the_app_ranks_on_the_declared_tasks(tmp_path, monkeypatch):
    from harness.leaderboard.aggregate import parse_board_tasks

    partial_submission(tmp_path)
    monkeypatch.setenv("HARNESS_BOARD_TASKS", "t1, t2,t3")
    app = run_app(tmp_path)
    table = app.dataframe[0].value
    assert list(table["model"]) == ["a", "b", "c", "partial"] and table["average_rank"].isna().tolist()[-1]
    assert "t9" not in table.columns
    caption = next(c.value for c in app.caption if "average rank" in c.value)
    assert "the board's 3 declared tasks (t1, t2, t3)" in caption and "no valid score on 2 of" in caption

    assert parse_board_tasks(" , ") is None
    for bad in ("t1,../etc", "t1,<b>x</b>", ",".join(f"t{i}" for i in range(1001))):
        monkeypatch.setenv("HARNESS_BOARD_TASKS", bad)
        app = run_app(tmp_path)
        assert [e.value for e in app.error][0].startswith(plain("HARNESS_BOARD_TASKS:")), [e.value for e in app.error]


def test_a_flood_of_files_cannot_redefine_a_registered_task(tmp_path):
    """Three folders saying synth-tiles is a survival task scored by c_index outnumber the two
    honest ones: by vote they would make the honest scores invalid and rank first. The registry
    says what synth-tiles is, so the flood is what is invalid; the board in the app is built so."""
    from harness.registry import load_registry

    for model, value in (("a", 0.9), ("b", 0.7)):
        write_result(tmp_path, model, "synth-tiles", "tile_classification", value)
    for i in range(3):
        write_result(tmp_path, f"evil{i}", "synth-tiles", "survival", 0.99, main="c_index")
    loaded, warnings = load_results(tmp_path)
    voted = build_leaderboard(loaded, warnings, families=FAMILIES)
    assert voted.cells[("a", "synth-tiles")].status == "invalid"  # what the vote alone does
    tasks = load_registry([], families=FAMILIES).tasks
    registered = {name: (task.family, task.main_score, task.params) for name, task in tasks.items()}
    board = build_leaderboard(loaded, warnings, families=FAMILIES, registered=registered)
    assert board.cells[("a", "synth-tiles")].status == "ok" and board.ranked_models()[:2] == ["a", "b"]
    assert all(board.cells[(f"evil{i}", "synth-tiles")].status == "invalid" for i in range(3))
    assert any("the registry says 'tile_classification', 'balanced_accuracy'" in w for w in board.warnings)
    app = run_app(tmp_path)
    leaders = [t for t in app.dataframe if "model" in t.value.columns]
    assert list(leaders[0].value["model"])[:2] == ["a", "b"], leaders[0].value
    # nor do they add a family to the app's filter (whose choices decide which declared tasks stay required)
    assert app.sidebar.multiselect[0].options == ["tile classification"]  # not the flood's "survival"


def test_a_result_of_another_version_or_other_params_of_a_registered_task_is_stale(tmp_path):
    """After a task's protocol moves on (its version in tasks.yaml, or its params), the results not
    yet rescored are not ranked beside the new ones; a task the registry does not name is not judged."""
    from harness.registry import load_registry

    tasks = load_registry([], families=FAMILIES).tasks
    version = tasks["synth-tiles"].version
    write_result(tmp_path, "fresh", "synth-tiles", "tile_classification", 0.7)
    write_result(tmp_path, "fresh2", "synth-tiles", "tile_classification", 0.6)
    write_result(tmp_path, "old", "synth-tiles", "tile_classification", 0.95, task_version=version - 1)
    write_result(tmp_path, "edited", "synth-tiles", "tile_classification", 0.9, task_params={"lr": 0.1, "max_steps": 12_500})
    write_result(tmp_path, "new-key", "synth-tiles", "tile_classification", 0.5,
                 task_params={"lr": 3e-4, "a_key_from_an_older_harness": 1})  # a key only one side has is no change
    loaded, warnings = load_results(tmp_path)
    registered = {name: (t.family, t.main_score, t.params, t.version) for name, t in tasks.items()}
    board = build_leaderboard(loaded, warnings, families=FAMILIES, registered=registered)
    cells = {slug: board.cells[(slug, "synth-tiles")] for slug in ("fresh", "old", "edited", "new-key")}
    assert cells["old"].status == "stale" and f"computed at version {version - 1} of the task" in cells["old"].reason
    assert cells["edited"].status == "stale" and "computed with lr = 0.1, where the registry gives 0.0003" in \
        cells["edited"].reason
    assert cells["fresh"].status == "ok" and cells["new-key"].status == "ok"
    assert board.ranked_models()[:3] == ["fresh", "fresh2", "new-key"]  # the stale 0.95 and 0.9 are not ranked
    assert sum("shown as stale" in w for w in board.warnings) == 1  # one line for all of them
    assert board.coverage("old") == "0/1 (1 stale)"
    # nor shown in the panels beside the table (few-shot curves, calibration, robustness)
    assert sorted(slug for slug, _ in board.valid(loaded)) == ["fresh", "fresh2", "new-key"]
    app = run_app(tmp_path)
    table = next(t.value for t in app.dataframe if "model" in t.value.columns and "synth-tiles" in t.value.columns)
    assert list(table["model"])[:3] == ["fresh", "fresh2", "new-key"]
    assert dict(zip(table["model"], table["coverage"]))["old"] == "0/1 (1 stale)"
    own = tmp_path / "own"
    for slug, version in (("a", 7), ("b", 2)):  # a task the registry does not name: its files are not judged
        write_result(own, slug, "my-own-task", "tile_classification", 0.5, task_version=version)
    own_board = build_leaderboard(*load_results(own), families=FAMILIES, registered=registered)
    assert {own_board.cells[(m, "my-own-task")].status for m in ("a", "b")} == {"ok"}
