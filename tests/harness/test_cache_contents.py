"""`harness cache list|prune`: what the embeddings cache holds per model, and removing entries by
model, age or unfinished state, never following a link or removing an entry another process holds."""

import json
import os
from pathlib import Path

import numpy as np
from filelock import FileLock

from harness.cli import main
from harness.embedding_cache import EmbeddingCache


def entry(cache: EmbeddingCache, model: str, dataset: str, rows: int, finish: bool = True, **meta) -> Path:
    key = cache.key(model, dataset, "test")
    writer = cache.writer(key, rows)
    writer.add(np.ones((rows if finish else rows // 2, 8), np.float32))
    if finish:
        writer.finish({"model": model, "dataset": dataset, "split": "test", **meta})
    return cache.folder(key)


def test_list_and_prune_by_model_age_and_unfinished(tmp_path, capsys):
    cache = EmbeddingCache(tmp_path / "cache", shard_size=64)
    big = [entry(cache, "lab/big-fm", f"set{i}", 4096) for i in range(2)]
    small = entry(cache, "[red]small[/red]", "set0", 64)
    old = entry(cache, "old-fm", "set0", 64)
    meta = json.loads((old / "meta.json").read_text())
    (old / "meta.json").write_text(json.dumps({**meta, "created": "2020-01-01T00:00:00Z"}))
    unfinished = entry(cache, "lab/big-fm", "set9", 1024, finish=False)
    held = entry(cache, "held-fm", "set0", 64)
    nested = entry(cache, "nested-fm", "set0", 64)
    (nested / "meta.json").write_text("[" * 200_000 + "]" * 200_000)  # json.loads: RecursionError
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.npy").write_bytes(b"x")
    os.symlink(outside, cache.root / ("f" * 32))  # a link named like an entry
    (cache.root / "notes").mkdir()  # not an entry

    assert main(["cache", "list", "--cache-dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "lab/big-fm" in out and "[red]small[/red]" in out and "(unfinished)" in out  # names as written
    assert "7 embedding entries" in out and out.index("lab/big-fm") < out.index("old-fm")  # largest first
    assert "(unreadable)" in out

    assert main(["cache", "prune", "--cache-dir", str(tmp_path / "cache")]) == 2  # nothing chosen: refused
    for age in ("nan", "-5", "soon"):  # NaN would pass every age: everything would go
        try:
            code = main(["cache", "prune", "--older-than", age, "--cache-dir", str(tmp_path / "cache")])
        except SystemExit as stop:
            code = stop.code
        assert code == 2 and all(p.exists() for p in big)
    capsys.readouterr()
    assert main(["cache", "prune", "--model", "lab/big-fm", "--dry-run", "--cache-dir", str(tmp_path / "cache")]) == 0
    assert "would remove 2 embedding entries" in capsys.readouterr().out and all(p.exists() for p in big)

    with FileLock(str(held / ".lock")):  # an extraction in progress elsewhere
        assert main(["cache", "prune", "--model", "held-fm", "--cache-dir", str(tmp_path / "cache")]) == 0
    captured = capsys.readouterr()
    assert "removed 0 embedding entries" in captured.out and "in use by another process" in captured.err
    assert held.exists()

    size = sum(f.stat().st_size for p in big for f in p.rglob("*") if f.is_file())
    assert size > 2 * 4096 * 8 * 4  # the two float32 arrays and their .npy headers
    assert main(["cache", "prune", "--model", "lab/big-fm", "--cache-dir", str(tmp_path / "cache")]) == 0
    assert f"removed 2 embedding entries ({size / 1e3:.1f} kB)" in capsys.readouterr().out
    assert not any(p.exists() for p in big) and unfinished.exists() and small.exists()
    assert main(["cache", "prune", "--older-than", "365", "--cache-dir", str(tmp_path / "cache")]) == 0
    assert not old.exists() and small.exists() and held.exists()
    assert main(["cache", "prune", "--unfinished", "--cache-dir", str(tmp_path / "cache")]) == 0
    assert not unfinished.exists() and small.exists()
    assert (outside / "keep.npy").exists() and (cache.root / ("f" * 32)).is_symlink()
    assert (cache.root / "notes").is_dir()
    assert not list(cache.root.glob(".removing-*"))
