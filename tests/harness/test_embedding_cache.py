"""Embeddings are computed once, resume after an interruption, and never hold NaN."""

import errno
from pathlib import Path

import numpy as np
import pytest

from harness.atomic_write import save_npy_atomic
from harness.embedding_cache import EmbeddingCache
from harness.errors import HarnessError
from harness.tile_embedding import ExtractOptions, embed_split
from harness.models.loading import LoadOptions, load_encoder
from harness.registry import SynthDataset
from harness.sources import DataContext, open_source


@pytest.fixture(scope="module")
def tiny_source(cache_dir):
    spec = SynthDataset(source="synth", generator="tiles",
                        params={"tile_size": 64, "per_class": {"train": 5, "test": 2}, "seed": 11})
    source = open_source("cache-test", spec, DataContext(cache_dir=cache_dir, data_root=cache_dir / "data"))
    source.prepare()
    return source


@pytest.fixture(scope="module")
def encoder():
    return load_encoder("timm:vit_tiny_patch16_224", LoadOptions(random_init=True))


OPTIONS = ExtractOptions(batch_size=4, num_workers=0)


def test_second_call_reads_the_cache(tmp_path, tiny_source, encoder):
    cache = EmbeddingCache(tmp_path)
    first, computed = embed_split(encoder, tiny_source, tiny_source.fingerprint(), "train", cache, OPTIONS)
    assert computed and first.embeddings.shape == (30, 192)
    again, computed_again = embed_split(encoder, tiny_source, tiny_source.fingerprint(), "train", cache, OPTIONS)
    assert not computed_again
    assert isinstance(again.embeddings, np.memmap)
    np.testing.assert_array_equal(first.embeddings, again.embeddings)
    other_split, _ = embed_split(encoder, tiny_source, tiny_source.fingerprint(), "test", cache, OPTIONS)
    assert other_split.embeddings.shape == (12, 192)


def test_bf16_embeddings_are_cached_apart_and_close_to_fp32(tmp_path, tiny_source, encoder):
    cache = EmbeddingCache(tmp_path)
    fp32, _ = embed_split(encoder, tiny_source, tiny_source.fingerprint(), "test", cache, OPTIONS)
    bf16_options = ExtractOptions(batch_size=4, num_workers=0, precision="bf16")
    bf16, computed = embed_split(encoder, tiny_source, tiny_source.fingerprint(), "test", cache, bf16_options)
    assert computed and bf16.meta["precision"] == "bf16" and fp32.meta["precision"] == "fp32"
    assert not np.array_equal(fp32.embeddings, bf16.embeddings)
    a, b = np.asarray(fp32.embeddings), np.asarray(bf16.embeddings)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.99


def test_interrupted_extraction_resumes_from_finished_shards(tmp_path, tiny_source, encoder, monkeypatch):
    import harness.embedding_cache as module

    reference, _ = embed_split(encoder, tiny_source, tiny_source.fingerprint(), "train",
                               EmbeddingCache(tmp_path / "reference"), OPTIONS)

    cache = EmbeddingCache(tmp_path / "interrupted", shard_size=8)
    real_add, calls = module.ShardWriter.add, []

    def add_then_die(self, embeddings, what=""):
        calls.append(len(embeddings))
        if len(calls) == 5:  # after 16 items: two shards of 8 are on disk
            raise KeyboardInterrupt
        real_add(self, embeddings, what)

    monkeypatch.setattr(module.ShardWriter, "add", add_then_die)
    with pytest.raises(KeyboardInterrupt):
        embed_split(encoder, tiny_source, tiny_source.fingerprint(), "train", cache, OPTIONS)
    monkeypatch.setattr(module.ShardWriter, "add", real_add)

    resumed, computed = embed_split(encoder, tiny_source, tiny_source.fingerprint(), "train", cache, OPTIONS)
    assert computed and resumed.meta["resumed_from"] == 16
    np.testing.assert_allclose(resumed.embeddings, reference.embeddings, rtol=1e-4, atol=1e-5)


def test_nan_embeddings_are_refused_and_nothing_is_cached(tmp_path, tiny_source, encoder, monkeypatch):
    import torch

    monkeypatch.setattr(encoder.module, "forward", lambda x: torch.full((len(x), 192), float("nan")))
    cache = EmbeddingCache(tmp_path)
    with pytest.raises(HarnessError, match="NaN or infinite embeddings"):
        embed_split(encoder, tiny_source, tiny_source.fingerprint(), "test", cache, OPTIONS)
    key = cache.key(encoder.cache_identity(), tiny_source.fingerprint(), "test")
    assert cache.load(key) is None


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
