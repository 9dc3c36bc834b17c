"""Result files (harness/results.py): the store writes and reads them; an unreadable file reads as
absent (it will be recomputed); files of every earlier schema still read, their new fields empty."""

import json
import os

from harness.evaluation import MetricInfo, MetricSummary
from harness.results import (MAX_RESULT_BYTES, RESULT_SCHEMA_VERSION, DatasetRecord, MainScore, ModelRecord,
                             ResultStore, TaskResult)


def a_result(**changes) -> TaskResult:
    result = TaskResult(task="t", task_version=2, family="report_generation", family_title="report generation",
                        status="ok", model=ModelRecord(name="m", weights="instrument"),
                        dataset=DatasetRecord(name="d", source="synth", fingerprint="f"),
                        main_score=MainScore(name="cider_d", value=1.7),
                        metrics={"cider_d": MetricSummary(mean=1.7, std=0.0, values=[1.7])},
                        metric_info={"cider_d": MetricInfo(bounds=(0.0, None))}, date="2026-11-30T13:44:51Z")
    return result.model_copy(update=changes)


def test_a_written_result_reads_back_equal(tmp_path):
    store = ResultStore(tmp_path)
    path = store.write("m", a_result())
    assert path == tmp_path / "m" / "t.json" and store.read(path) == a_result()
    written = json.loads(path.read_text())
    assert written["schema_version"] == RESULT_SCHEMA_VERSION == 7
    assert written["metric_info"]["cider_d"] == {"higher_is_better": True, "bounds": [0.0, None], "group": "score"}
    assert not MetricInfo(bounds=(0.0, None)).bounded and MetricInfo().bounded


def test_an_undefined_value_is_written_as_standard_json_and_read_back_as_nan(tmp_path):
    """A metric undefined on the data (an AUROC on a test split of one class) was written as a bare
    NaN, which is not JSON: jq, browsers and other readers refuse the whole file."""
    import math
    import sys

    nan = float("nan")
    undefined = {"macro_auroc": MetricSummary(mean=nan, std=nan, ci95=(nan, nan), values=[nan, 0.5]),
                 "cider_d": MetricSummary(mean=1.7, std=0.0, values=[1.7])}
    store = ResultStore(tmp_path)
    path = store.write("m", a_result(metrics=undefined, main_score=MainScore(name="cider_d", value=1.7,
                                                                          replicates=[1.6, nan]),
                                     details={"gap": float("inf"), "nested": [{"r": nan}]}))
    text = path.read_text()
    written = json.loads(text, parse_constant=lambda name: sys.exit(f"not JSON: {name}"))
    assert written["metrics"]["macro_auroc"] == {"mean": None, "std": None, "ci95": [None, None], "values": [None, 0.5]}
    assert written["details"] == {"gap": None, "nested": [{"r": None}]}
    back = store.read(path)
    assert math.isnan(back.metrics["macro_auroc"].mean) and back.metrics["macro_auroc"].values[1] == 0.5
    assert math.isnan(back.main_score.replicates[1]) and back.metrics["cider_d"] == undefined["cider_d"]
    path.write_text(text.replace('"mean": null', '"mean": NaN', 1))  # as files of earlier versions were written
    assert math.isnan(store.read(path).metrics["macro_auroc"].mean)


def test_an_unreadable_file_reads_as_absent(tmp_path):
    store = ResultStore(tmp_path)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "t.json").write_text('{"task": "t", "status": "ok"')  # cut short by a crash
    assert store.read(tmp_path / "m" / "t.json") is None
    assert store.read(tmp_path / "m" / "absent.json") is None
    # a FIFO under a result's name (a run reading it waited for ever), a folder, a file over the bound
    os.mkfifo(tmp_path / "m" / "fifo.json")
    (tmp_path / "m" / "folder.json").mkdir()
    with open(tmp_path / "m" / "huge.json", "wb") as huge:
        huge.truncate(MAX_RESULT_BYTES + 1)
    for name in ("fifo.json", "folder.json", "huge.json"):
        assert store.read(tmp_path / "m" / name) is None
    # another task's result copied under this task's name (a run reused it as this task's score)
    (tmp_path / "m" / "other.json").write_bytes(store.write("m", a_result()).read_bytes())
    assert store.read(tmp_path / "m" / "other.json") is None and store.read(tmp_path / "m" / "t.json") == a_result()


def test_a_schema_3_file_reads_without_metric_descriptions(tmp_path):
    store = ResultStore(tmp_path)
    path = store.write("m", a_result())
    old = {k: v for k, v in json.loads(path.read_text()).items() if k not in ("metric_info", "family_title")}
    path.write_text(json.dumps(old | {"schema_version": 3}))
    loaded = store.read(path)
    assert loaded.schema_version == 3 and loaded.metric_info == {} and loaded.family_title is None
    assert loaded.metrics == a_result().metrics


def test_the_readme_documents_every_field_of_the_result_schema_at_its_version():
    """The README's Results table is the schema's documentation for whoever reads the files (the
    leaderboard's contract): it said schema 4 and lacked the fields of 5 and 6 until this test."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("\n## Results\n", 1)[1].split("\n\n`harness run --log-samples`", 1)[0]
    documented = {name for cell in re.findall(r"^\| ([^|]+) \|", table, re.MULTILINE)
                  for name in re.findall(r"`([a-z_]+)`", cell)}
    assert set(TaskResult.model_fields) <= documented, set(TaskResult.model_fields) - documented
    assert re.search(rf"^\| `schema_version` \| {RESULT_SCHEMA_VERSION} \(", table, re.MULTILINE)
    for record, row in ((ModelRecord, "model"), (DatasetRecord, "dataset")):
        line = next(line for line in table.splitlines() if line.startswith(f"| `{row}` |"))
        assert all(f"`{field}`" in line for field in record.model_fields), (row, line)
