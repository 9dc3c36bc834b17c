"""Cross-cohort tasks: train (and select) on one dataset, test on another with the same classes.
Mismatched label sets are refused in one line naming both datasets: at load where the registry
declares the classes, at run time where only the files do."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.cli import main
from harness.errors import HarnessError
from harness.registry import load_registry

COHORTS = """
datasets:
  cohort-a:
    source: synth
    generator: tiles
    params: {tile_size: 32, per_class: {train: 6, val: 3, test: 3}, stainings: [standard], scanners: [reference], seed: 1}
  cohort-b:
    source: synth
    generator: tiles
    params: {tile_size: 32, per_class: {test: 4}, stainings: [faded], scanners: [sharp-cool], seed: 2}
tasks:
  cross:
    family: tile_classification
    dataset: cohort-a
    test_dataset: cohort-b
    main_score: balanced_accuracy
    params: {max_steps: 100, eval_every: 50, patience: 100, seeds: [0], fewshot_shots: [], bootstrap_resamples: 50}
"""


def test_trains_on_one_cohort_and_tests_on_the_other(tmp_path):
    registry = tmp_path / "cohorts.yaml"
    registry.write_text(COHORTS)
    out = tmp_path / "out"
    code = main(["run", "--model", "colour-stats", "--workers", "0", "--tasks", "cross", "--include", str(registry),
                 "--output", str(out), "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    result = json.loads((out / "colour-stats" / "cross.json").read_text())
    assert result["status"] == "ok"
    assert result["n_samples"] == {"train": 36, "val": 18, "test": 24}  # cohort A's train and val, cohort B's 24 test tiles
    assert result["dataset"]["name"] == "cohort-a"
    assert result["details"]["test_dataset"]["name"] == "cohort-b"
    assert result["details"]["test_dataset"]["split"] == "test"
    # the test cohort changed (here: another draw): the result is scored again, not reused
    registry.write_text(COHORTS.replace("seed: 2}", "seed: 3}"))
    assert main(["run", "--model", "colour-stats", "--workers", "0", "--tasks", "cross", "--include", str(registry),
                 "--output", str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    again = json.loads((out / "colour-stats" / "cross.json").read_text())
    assert again["details"]["test_dataset"]["fingerprint"] != result["details"]["test_dataset"]["fingerprint"]
    assert again["dataset"]["fingerprint"] == result["dataset"]["fingerprint"]


def test_declared_classes_that_differ_are_refused_at_load(tmp_path):
    registry = tmp_path / "cohorts.yaml"
    registry.write_text(COHORTS.replace("seed: 2}", "seed: 2, task: grade}"))
    with pytest.raises(HarnessError) as error:
        load_registry([registry])
    message = str(error.value)
    assert "\n" not in message and str(registry) in message
    assert "task 'cross': cross-cohort classes differ: 'cohort-a' has" in message and "'cohort-b' has ['grade 1'" in message


def _folder(root: Path, classes: list[str], n: int = 3) -> None:
    for index, name in enumerate(classes):
        folder = root / "test" / name
        folder.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((32, 32, 3), 40 + 30 * index, np.uint8)).save(folder / f"{i}.png")


def test_classes_known_only_from_the_files_are_checked_when_the_task_runs(tmp_path):
    """Cohort B's folders name a class cohort A lacks: the task fails naming both; with the same
    names in another order B's labels are mapped by name and the task runs."""
    registry = tmp_path / "cohorts.yaml"
    registry.write_text(COHORTS.replace("""  cohort-b:
    source: synth
    generator: tiles
    params: {tile_size: 32, per_class: {test: 4}, stainings: [faded], scanners: [sharp-cool], seed: 2}""", """  cohort-b:
    source: imagefolder
    path: cohort-b
    splits: [test]"""))
    tissues = ["tumour", "stroma", "lymphocytes", "adipose", "mucosa", "necrosis"]
    _folder(tmp_path / "data" / "cohort-b", tissues[:5] + ["muscle"])
    run = ["run", "--model", "colour-stats", "--workers", "0", "--tasks", "cross", "--include", str(registry),
           "--data-root", str(tmp_path / "data"), "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    assert main(run) == 1
    failed = json.loads((tmp_path / "out" / "colour-stats" / "cross.json").read_text())
    assert failed["status"] == "failed" and "\n" not in failed["reason"]
    assert failed["reason"].startswith("cross-cohort classes differ: 'cohort-a' has ['adipose', 'lymphocytes'")
    assert "'cohort-b' has ['adipose', 'lymphocytes', 'mucosa', 'muscle'" in failed["reason"]

    import shutil

    shutil.rmtree(tmp_path / "data" / "cohort-b")
    _folder(tmp_path / "data" / "cohort-b", tissues)  # the folders sort as adipose, lymphocytes, ... : another order
    assert main(run + ["--overwrite", "--log-samples"]) == 0
    result = json.loads((tmp_path / "out" / "colour-stats" / "cross.json").read_text())
    assert result["status"] == "ok" and result["n_samples"]["test"] == 18
    import pandas as pd

    samples = pd.read_parquet(tmp_path / "out" / "colour-stats" / result["samples"])
    labels = samples[samples["head"] == "probe"].sort_values("item")["label"].tolist()
    # B's items in folder order (adipose x3, lymphocytes x3, ...), labelled with A's indices of those names
    assert labels == [tissues.index(name) for name in sorted(tissues) for _ in range(3)]


def test_a_slide_dataset_in_a_cross_cohort_task_is_refused_at_load(tmp_path):
    registry = tmp_path / "cohorts.yaml"
    registry.write_text(COHORTS.replace("test_dataset: cohort-b", "test_dataset: synth-slides"))
    with pytest.raises(HarnessError, match="key 'test_dataset': 'synth-slides' is a dataset of slides; cross-cohort"):
        load_registry([registry])


def test_a_test_cohort_image_that_is_a_training_cohort_image_is_one_line(tmp_path):
    """Cohort B built by copying files out of cohort A tested the model on images it was trained on."""
    rng = np.random.default_rng(0)
    for cohort, splits in (("cohort-a", ["train", "test"]), ("cohort-b", ["test"])):
        for split in splits:
            for label in ("a", "b"):
                folder = tmp_path / "data" / cohort / split / label
                folder.mkdir(parents=True)
                for i in range(4):
                    shade = 60 if label == "a" else 160
                    pixels = np.clip(rng.normal(shade, 20, (16, 16, 3)), 0, 255).astype(np.uint8)
                    Image.fromarray(pixels).save(folder / f"{i}.png")
    registry = tmp_path / "cohorts.yaml"
    registry.write_text(
        "datasets:\n  cohort-a:\n    source: imagefolder\n    path: cohort-a\n    splits: [train, test]\n"
        "  cohort-b:\n    source: imagefolder\n    path: cohort-b\n    splits: [test]\n"
        "tasks:\n  cross:\n    family: tile_classification\n    dataset: cohort-a\n    test_dataset: cohort-b\n"
        "    main_score: balanced_accuracy\n"
        "    params: {max_steps: 20, seeds: [0], fewshot_shots: [], knn_k: [1], bootstrap_resamples: 20}\n")
    run = ["run", "--model", "colour-stats", "--workers", "0", "--tasks", "cross", "--include", str(registry),
           "--data-root", str(tmp_path / "data"), "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    copy = tmp_path / "data" / "cohort-b" / "test" / "b" / "copy.png"
    copy.write_bytes((tmp_path / "data" / "cohort-a" / "train" / "a" / "2.png").read_bytes())
    assert main(run) == 1
    failed = json.loads((tmp_path / "out" / "colour-stats" / "cross.json").read_text())
    assert failed["status"] == "failed" and failed["reason"] == (
        f"cross-cohort 'cohort-a' -> 'cohort-b': '{tmp_path / 'data' / 'cohort-a' / 'train' / 'a' / '2.png'}' (split "
        f"'cohort-a/train') and '{copy}' (split 'cohort-b/test') are one image, byte for byte: an image in two splits "
        "leaks between them and inflates the score; keep one copy")
    copy.unlink()
    assert main(run) == 0
