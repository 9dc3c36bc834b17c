"""tasks.yaml schema: every error names the file, the entry and the key."""

from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.registry import load_registry
from harness.tasks import FAMILIES


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    return path


def error_of(paths) -> str:
    with pytest.raises(HarnessError) as info:
        load_registry(paths, families=FAMILIES)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_builtin_registry_is_valid_and_declares_the_public_tile_tasks():
    registry = load_registry(families=FAMILIES)
    for name in ("synth-tiles", "synth-retrieval", "bach", "crc-100k", "mhist", "pcam", "bracs", "breakhis",
                 "crc-retrieval"):
        assert name in registry.tasks
    assert registry.datasets["pcam"].source == "hf" and registry.datasets["pcam"].revision


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, "tasks:\n  x: [unclosed\n  y: 1\n")
    message = error_of([path])
    assert str(path) in message and "malformed YAML" in message and "line" in message


@pytest.mark.parametrize("kind", ["fifo", "device", "folder", "too large"])
def test_a_yaml_path_naming_no_file_of_settings_is_one_line_without_reading_it(tmp_path, kind):
    """A FIFO blocked the reader for ever (a checkpoint's card.yaml, an --include, a --config) and
    /dev/zero filled the memory; only a regular file of at most 16 MiB is read."""
    import os

    path = {"device": Path("/dev/zero"), "folder": tmp_path}.get(kind, tmp_path / "mine.yaml")
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "too large":
        with open(path, "wb") as handle:
            handle.truncate(16 * 2**20 + 1)  # sparse: nothing is written
    message = error_of([path])
    assert message.startswith(f"{path}: registry file ") and message.endswith(
        "far more than a YAML file of settings: check the path" if kind == "too large" else
        "is not a regular file (a folder, a FIFO or a device): give the path of a YAML file")


def test_unknown_key_names_task_and_key(tmp_path):
    path = write(tmp_path, "tasks:\n  mine:\n    family: retrieval\n    dataset: synth-tiles\n"
                           "    main_score: map@5\n    paramz: {}\n")
    message = error_of([path])
    assert str(path) in message and "task 'mine'" in message and "'paramz'" in message


def test_unknown_dataset_key_names_dataset(tmp_path):
    path = write(tmp_path, "datasets:\n  d:\n    source: hf\n    hub_id: a/b\n    revision: main\n"
                           "    data_files: {train: x}\n    classes: [a]\n    colour: red\n")
    message = error_of([path])
    assert "dataset 'd'" in message and "'colour'" in message


def test_unknown_family_parameter_and_main_score(tmp_path):
    base = "tasks:\n  mine:\n    family: {family}\n    dataset: synth-tiles\n    main_score: {score}\n{extra}"
    assert "unknown family 'tiles'" in error_of([write(tmp_path, base.format(family="tiles", score="x", extra=""))])
    bad_param = base.format(family="retrieval", score="map@5", extra="    params: {kz: [1]}\n")
    assert "'params.kz'" in error_of([write(tmp_path, bad_param)])
    bad_score = base.format(family="retrieval", score="accuracy", extra="")
    assert "'main_score'" in error_of([write(tmp_path, bad_score)])


def test_reference_to_unknown_dataset(tmp_path):
    path = write(tmp_path, "tasks:\n  mine:\n    family: retrieval\n    dataset: nope\n    main_score: map@5\n")
    assert "unknown dataset 'nope'" in error_of([path])


def test_duplicate_name_across_files(tmp_path):
    path = write(tmp_path, "tasks:\n  synth-tiles:\n    family: retrieval\n    dataset: synth-tiles\n"
                           "    main_score: map@5\n")
    assert "already defined" in error_of([path])


def test_missing_include_file(tmp_path):
    assert "not found" in error_of([tmp_path / "absent.yaml"])


def test_include_chain_and_selection(tmp_path, tiny_registry_file):
    outer = write(tmp_path, f"include: [{tiny_registry_file}]\nsuites:\n  mine: [tiny-tiles, synth-retrieval]\n")
    registry = load_registry([outer], families=FAMILIES)
    assert registry.select("mine") == ["tiny-tiles", "synth-retrieval"]
    assert registry.select("tiny,tiny-tiles") == ["tiny-tiles", "tiny-retrieval"]
    assert "crc-retrieval" in registry.select("retrieval")  # a family name
    assert set(registry.select("all")) == set(registry.tasks)


def test_unknown_task_suggests_the_close_name():
    registry = load_registry(families=FAMILIES)
    with pytest.raises(HarnessError, match=r"unknown task.*'synth-tile'.*did you mean 'synth-tiles'"):
        registry.select("synth-tile")


def test_test_folds_on_a_dataset_without_folds_is_refused_when_the_registry_loads(tmp_path):
    """It was found at evaluation, after every slide of the cohort had been embedded."""
    path = write(tmp_path, "datasets:\n  cohort: {source: wsi, path: c/slides.csv, label_column: label}\n"
                           "tasks:\n  mine: {family: slide_classification, dataset: cohort, main_score: balanced_accuracy,"
                           " params: {test_folds: [0]}}\n")
    message = error_of([path])
    assert message == (f"{path}: task 'mine': key 'params.test_folds': dataset 'cohort' has no folds of its own (no "
                       "fold_column); drop test_folds, or give the dataset its fold_column")
