"""Tile embedding (harness/tile_embedding.py): computed once per model x data x split, cached
apart by precision, resumed after an interruption, and never holding NaN."""

import numpy as np
import pytest

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


@pytest.mark.parametrize("damage", ["truncated array", "empty array", "array of another length", "not an array",
                                    "meta.json cut short", "meta.json not an object", "meta.json a folder"])
def test_a_damaged_entry_is_named_and_computed_again(tmp_path, tiny_source, encoder, damage, capsys):
    """A finished entry whose files no longer read back as it (truncated on a full disk, overwritten
    by hand) failed every later run of its tasks ('mmap length is greater than file size', no file
    named). It is now named in one warning and computed again, to the same numbers."""
    cache = EmbeddingCache(tmp_path)
    first, _ = embed_split(encoder, tiny_source, tiny_source.fingerprint(), "test", cache, OPTIONS)
    expected = np.array(first.embeddings)
    folder = cache.folder(next(p.name for p in cache.root.iterdir()))
    array, meta = folder / "embeddings.npy", folder / "meta.json"
    del first
    if damage == "truncated array":
        array.write_bytes(array.read_bytes()[:1000])
    elif damage == "empty array":
        array.write_bytes(b"")
    elif damage == "array of another length":
        np.save(array, expected[:5])
    elif damage == "not an array":
        array.write_text("{}")
    elif damage == "meta.json cut short":
        meta.write_text('{"format": 1, "n_items": 1')
    elif damage == "meta.json not an object":
        meta.write_text("[12]")
    else:
        meta.unlink()
        meta.mkdir()
    capsys.readouterr()
    again, computed = embed_split(encoder, tiny_source, tiny_source.fingerprint(), "test", cache, OPTIONS)
    assert computed
    np.testing.assert_array_equal(np.asarray(again.embeddings), expected)
    warned = capsys.readouterr().err
    assert warned.count("cannot be read") == 1 and str(folder.name) in warned
    assert embed_split(encoder, tiny_source, tiny_source.fingerprint(), "test", cache, OPTIONS)[1] is False


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


def test_the_device_path_hands_the_model_what_the_cpu_path_does():
    """What can be checked without a GPU: the prefetcher yields every batch unchanged (a tensor, or
    the images inside a tuple), uint8 on the device, and device_input scales and normalises them
    exactly as the transform does, in float32 of the same shape."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from harness.models.transform import TileTransform
    from harness.tile_embedding import DevicePrefetcher, device_input

    images = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ids = torch.arange(10)
    device = torch.device("cpu")
    plain = list(DevicePrefetcher(DataLoader(images, batch_size=4), device))
    assert [b.shape[0] for b in plain] == [4, 4, 2] and torch.equal(torch.cat(plain), images)
    assert all(b.dtype == torch.uint8 and b.device == device for b in plain)
    tupled = list(DevicePrefetcher(DataLoader(TensorDataset(ids, images), batch_size=4), device, images_at=1))
    assert torch.equal(torch.cat([t[0] for t in tupled]), ids) and torch.equal(torch.cat([t[1] for t in tupled]), images)

    class Encoder:
        transform = TileTransform(8, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

    x = device_input(Encoder(), images)
    expected = (images.float() / 255.0 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) \
        / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert x.dtype == torch.float32 and x.shape == images.shape and torch.allclose(x, expected, atol=1e-6)


def test_workers_default_to_none_on_cpu_and_to_several_on_cuda():
    from harness.tile_embedding import resolve_workers

    assert resolve_workers(None, "cpu") == 0  # the model's threads use every core already
    assert 1 <= resolve_workers(None, "cuda") <= 8
    assert resolve_workers(3, "cpu") == 3  # --workers wins


@pytest.fixture(scope="module")
def masked_source(cache_dir):
    spec = SynthDataset(source="synth", generator="tiles",
                        params={"tile_size": 64, "per_class": {"train": 2}, "masks": True, "seed": 12})
    source = open_source("dense-test", spec, DataContext(cache_dir=cache_dir, data_root=cache_dir / "data"))
    source.prepare()
    return source


def test_dense_features_are_the_token_grid_cached_as_float16(tmp_path, masked_source, encoder, monkeypatch):
    """Segmentation's features: the last block's tokens on their grid, (n, 192, 14, 14) for a
    ViT/16 at 224, kept as float16 in shards; an interrupted extraction resumes after the
    finished shards, and the pooled embeddings of the same model are a separate entry."""
    import torch

    import harness.tile_embedding as module

    monkeypatch.setattr(module, "DENSE_SHARD", 5)
    cache = EmbeddingCache(tmp_path)
    fingerprint = masked_source.fingerprint()
    calls = {"n": 0}
    original = encoder.module.feature_map

    def dies_on_the_third_batch(x):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(x)

    monkeypatch.setattr(encoder.module, "feature_map", dies_on_the_third_batch)
    with pytest.raises(KeyboardInterrupt):
        embed_split(encoder, masked_source, fingerprint, "train", cache, OPTIONS, dense=True)
    monkeypatch.setattr(encoder.module, "feature_map", original)
    dense, computed = embed_split(encoder, masked_source, fingerprint, "train", cache, OPTIONS, dense=True)
    assert computed and dense.meta["resumed_from"] == 5  # the first shard (5 of the 8 images embedded) was kept
    assert dense.embeddings.shape == (12, 192, 14, 14) and dense.embeddings.dtype == np.float16
    images = torch.stack([encoder.transform.prepare(masked_source.images("train")[i]) for i in range(12)])
    with torch.inference_mode():
        direct = encoder.module.feature_map(encoder.transform.normalise(images)).numpy()
    np.testing.assert_allclose(np.asarray(dense.embeddings, np.float32), direct, rtol=1e-2, atol=1e-2)
    pooled, _ = embed_split(encoder, masked_source, fingerprint, "train", cache, OPTIONS)
    assert pooled.embeddings.shape == (12, 192)
    masks = masked_source.masks("train")
    assert masks.shape == (12, 64, 64) and set(np.unique(masks)) <= set(range(5)) and masks.max() > 0


def test_colour_statistics_and_instruments_have_dense_forms(tmp_path, masked_source):
    from harness.models.instruments import make_instrument

    cache = EmbeddingCache(tmp_path)
    fingerprint = masked_source.fingerprint()
    colour = load_encoder("colour-stats", LoadOptions())
    maps, _ = embed_split(colour, masked_source, fingerprint, "train", cache, OPTIONS, dense=True)
    assert maps.embeddings.shape == (12, 30, 16, 16)
    oracle, _ = embed_split(make_instrument("synth-oracle", 0), masked_source, fingerprint, "train", cache, OPTIONS,
                            dense=True)
    assert oracle.embeddings.shape == (12, 5, 32, 32)  # class shares of 2 px cells of a 64 px tile
    shares = np.asarray(oracle.embeddings, np.float32).sum(axis=1)
    np.testing.assert_allclose(shares, 6.0, atol=1e-2)  # ORACLE_SCALE x (shares sum to one)
    noise, _ = embed_split(make_instrument("random-noise", 0), masked_source, fingerprint, "train", cache, OPTIONS,
                           dense=True)
    assert noise.embeddings.shape == (12, 64, 16, 16)


def test_one_embedding_for_all_images_is_the_models_fault_only_when_the_images_differ():
    """A split of copies of one tile rightly embeds as one vector; the same vector for different
    tiles is a model blind to its input."""
    from types import SimpleNamespace

    from PIL import Image

    from harness.tile_embedding import refuse_constant

    cached = SimpleNamespace(embeddings=np.ones((10, 4), dtype=np.float32))
    blind = SimpleNamespace(reads_pixels=True, info=SimpleNamespace(name="lab/blind"))
    tile = np.full((16, 16, 3), 120, dtype=np.uint8)
    copies = [Image.fromarray(tile) for _ in range(10)]
    assert refuse_constant(cached, blind, "cohort/train", False, lambda: copies) is cached
    assert refuse_constant(cached, blind, "cohort/train", False, lambda: [tile] * 10) is cached  # HWC arrays
    different = copies[:9] + [Image.fromarray(tile + 1)]  # one tile of ten differs, the last read
    with pytest.raises(HarnessError, match="lab/blind gives the same embedding to all 10 images of cohort/train"):
        refuse_constant(cached, blind, "cohort/train", False, lambda: different)
    read = []
    varied = SimpleNamespace(embeddings=np.arange(40, dtype=np.float32).reshape(10, 4))
    assert refuse_constant(varied, blind, "cohort/train", False, lambda: read.append(1) or copies) is varied
    assert not read  # a model whose embeddings differ costs no image read
