"""A local checkpoint's weights are hashed once per state of the file: a rerun reads the digest from
the cache, a file rewritten in place (even with its old modification time put back) is hashed again."""

import hashlib
import json
import os

from harness.models import weights_digest
from harness.models.weights_digest import weights_sha256


def test_a_file_is_hashed_once_until_it_changes(tmp_path, monkeypatch):
    weights, cache = tmp_path / "model.safetensors", tmp_path / "cache"
    weights.write_bytes(b"a" * 3000)
    reads = []
    hash_file = weights_digest.sha256_file
    monkeypatch.setattr(weights_digest, "sha256_file", lambda path: reads.append(path) or hash_file(path))

    first = weights_sha256(weights, cache)
    assert first == hashlib.sha256(b"a" * 3000).hexdigest() and len(reads) == 1
    assert weights_sha256(tmp_path / "." / "model.safetensors", cache) == first and len(reads) == 1  # from the cache

    before = os.stat(weights)
    weights.write_bytes(b"b" * 3000)  # the same size, rewritten in place, its modification time put back
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert weights_sha256(weights, cache) == hashlib.sha256(b"b" * 3000).hexdigest() and len(reads) == 2

    [entry] = (cache / "weights-sha256").iterdir()
    entry.write_text(json.dumps({"state": json.loads(entry.read_text())["state"], "sha256": "../../etc"}))
    assert weights_sha256(weights, cache) == hashlib.sha256(b"b" * 3000).hexdigest()  # a damaged entry: hashed
    entry.write_text("{not json")
    assert weights_sha256(weights, cache) == hashlib.sha256(b"b" * 3000).hexdigest() and len(reads) == 4

    read_only = tmp_path / "read-only"
    read_only.write_text("a file where the cache folder would be")  # nothing can be written there
    assert weights_sha256(weights, read_only) == hashlib.sha256(b"b" * 3000).hexdigest()
