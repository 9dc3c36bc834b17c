"""A new user's few dozen tiles in an image folder: each way a small dataset used to fail with a
library's message (or silently) now reads it, or says in one line what to change."""

import json
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.cli import main
from harness.registry import ImageFolderDataset
from harness.sources import DataContext, open_source

RUN = ["--model", "colour-stats", "--workers", "0"]


def _tiles(folder: Path, n: int, shade: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([shade, zlib.crc32(folder.parent.name.encode())])  # each split its own tiles
    for i in range(n):
        image = np.clip(rng.normal(shade, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"{i}.png")


def _run(tmp_path: Path, layout: dict[str, dict[str, int]], params: str = "{}", splits="[train, test]") -> dict:
    """Write <data>/mine/<split>/<class>/ with `layout[split][class]` tiles, run one tile task on it."""
    for split, classes in layout.items():
        for index, (name, n) in enumerate(classes.items()):
            _tiles(tmp_path / "data" / "mine" / split / name, n, 40 + 25 * index)
    registry = tmp_path / "mine.yaml"
    registry.write_text(f"datasets:\n  mine:\n    source: imagefolder\n    path: mine\n    splits: {splits}\n"
                        f"tasks:\n  mine-tiles:\n    family: tile_classification\n    dataset: mine\n"
                        f"    main_score: balanced_accuracy\n    params: {params}\n")
    return _score(tmp_path)


def _score(tmp_path: Path) -> dict:
    """Run the task `_run` registered on the files as they are now."""
    out = tmp_path / "results"
    main(["run", *RUN, "--tasks", "mine-tiles", "--include", str(tmp_path / "mine.yaml"), "--data-root",
          str(tmp_path / "data"), "--output", str(out), "--cache-dir", str(tmp_path / "cache")])
    return json.loads((out / "colour-stats" / "mine-tiles.json").read_text())


def test_one_training_tile_of_a_class_names_the_class_and_the_hold_out(tmp_path):
    result = _run(tmp_path, {"train": {"adipose": 4, "tumour": 1}, "test": {"adipose": 2, "tumour": 2}},
                  params="{knn_k: [1]}")
    assert result["status"] == "failed"
    reason = result["reason"]
    assert "'tumour' has only one training image" in reason and "no val split" in reason and "held out" in reason
    assert "least populated" not in reason and "\n" not in reason


def test_few_tiles_per_class_hold_out_one_of_each(tmp_path):
    """8 classes x 3 training tiles: 10% would hold out 3 tiles for 8 classes (scikit-learn's
    'test_size = 3 should be greater or equal to the number of classes = 8'); one of each is held out."""
    classes = {f"c{i}": 3 for i in range(8)}
    result = _run(tmp_path, {"train": classes, "test": {f"c{i}": 1 for i in range(8)}},
                  params="{knn_k: [1], max_steps: 50, seeds: [0]}")
    assert result["status"] == "ok", result.get("reason")
    assert result["n_samples"] == {"train": 16, "val": 8, "test": 8}


def test_a_result_is_scored_again_when_its_data_changed_and_kept_when_the_data_is_gone(tmp_path, capsys):
    """The reuse of an earlier result looks at the data too: tiles added to the test split are scored,
    where the rerun answered with the result of the smaller test set; data removed since keeps it."""
    layout = {"train": {"a": 4, "b": 4}, "test": {"a": 2, "b": 2}}
    params = "{knn_k: [1], max_steps: 20, seeds: [0], fewshot_shots: [], bootstrap_resamples: 20}"
    first = _run(tmp_path, layout, params)
    assert first["status"] == "ok" and first["n_samples"]["test"] == 4
    assert _score(tmp_path)["date"] == first["date"]  # nothing changed: reused
    capsys.readouterr()
    Image.fromarray(np.full((32, 32, 3), 40, np.uint8)).save(tmp_path / "data" / "mine" / "test" / "a" / "new.png")
    again = _score(tmp_path)
    assert again["n_samples"]["test"] == 5 and again["dataset"]["fingerprint"] != first["dataset"]["fingerprint"]
    told = "colour-stats / mine-tiles: dataset 'mine' changed since its result was computed; scoring it again"
    err = capsys.readouterr().err
    assert told in err and "embedding mine/test" in err
    assert "embedding mine/train" not in err  # the training split is what it was: its embeddings are the cache's
    shutil.rmtree(tmp_path / "data" / "mine")  # the data gone: its result stays as it was
    _score(tmp_path)
    assert json.loads((tmp_path / "results" / "colour-stats" / "mine-tiles.json").read_text()) == again


def test_k_larger_than_the_training_set_is_refused_and_said(tmp_path):
    result = _run(tmp_path, {"train": {"a": 8, "b": 8}, "val": {"a": 2, "b": 2}, "test": {"a": 2, "b": 2}},
                  params="{knn_k: [1, 20], max_steps: 50, seeds: [0]}", splits="[train, val, test]")
    assert result["status"] == "failed"
    assert "kNN k=20 is larger than the 16 training images" in result["reason"]
    assert "knn_k: [1] (a list of k)" in result["reason"]  # what to write: the k that fit, as the schema takes them


def test_flat_folder_says_which_layout_is_expected(tmp_path):
    _tiles(tmp_path / "data" / "mine", 5, 60)  # images directly in the dataset folder
    source = open_source("mine", ImageFolderDataset(source="imagefolder", path="mine", splits=["train", "test"]),
                         DataContext(cache_dir=tmp_path / "cache", data_root=tmp_path / "data"))
    reason = source.availability().reason
    assert "holds 5 image(s) directly" in reason and "<split>/<class>/<image>" in reason
    assert "manual download" not in reason
    _tiles(tmp_path / "data" / "other" / "tumour", 2, 60)  # class folders without split folders
    other = open_source("other", ImageFolderDataset(source="imagefolder", path="other", splits=["train"]),
                        DataContext(cache_dir=tmp_path / "cache", data_root=tmp_path / "data"))
    assert "holds image folders ['tumour']" in other.availability().reason
    _tiles(tmp_path / "data" / "cased" / "Train" / "tumour", 2, 60)  # 'Train' where the splits say 'train'
    cased = open_source("cased", ImageFolderDataset(source="imagefolder", path="cased", splits=["train"]),
                        DataContext(cache_dir=tmp_path / "cache", data_root=tmp_path / "data"))
    assert cased.availability().reason == (
        f"no train folder under {tmp_path / 'data' / 'cased'}, but 'Train': split folders are matched by their exact "
        "names; rename the folders, or name the splits as they are spelt (the dataset's `splits`)")


def test_a_class_missing_from_the_first_split_is_read_and_warned_about(tmp_path, capsys):
    root = tmp_path / "data" / "mine"
    for name in ("a", "b"):
        _tiles(root / "train" / name, 4, 50)
    for name in ("a", "b", "c"):  # "c" only in test: 18 images on disk
        _tiles(root / "test" / name, 2, 50)
    source = open_source("mine", ImageFolderDataset(source="imagefolder", path="mine", splits=["train", "test"]),
                         DataContext(cache_dir=tmp_path / "cache", data_root=tmp_path / "data"))
    assert source.class_names() == ["a", "b", "c"]
    assert len(source.labels("train")) + len(source.labels("test")) == 14
    assert sorted(set(source.labels("test").tolist())) == [0, 1, 2]
    warning = capsys.readouterr().err
    assert "no images of class(es) ['c'] in this split" in warning and "train" in warning


@pytest.mark.parametrize("n_train", [40, 400])
def test_the_hold_out_is_the_one_scikit_learn_draws_when_there_is_room(n_train):
    """Unchanged for datasets with room: the same indices as train_test_split(test_size=0.1)."""
    from sklearn.model_selection import train_test_split

    from harness.evaluation import SplitArrays
    from harness.tasks.tile_classification import fit_val_test_splits

    labels = np.arange(n_train) % 4
    embeddings = np.arange(n_train, dtype=np.float32)[:, None]
    train, val, _, _ = fit_val_test_splits({"train": SplitArrays(embeddings, labels),
                                            "test": SplitArrays(embeddings[:4], labels[:4])}, 0.1)
    _, expected = train_test_split(np.arange(n_train), test_size=0.1, stratify=labels, random_state=0)
    np.testing.assert_array_equal(val.embeddings[:, 0].astype(int), expected)
