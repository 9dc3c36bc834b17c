"""Byte-identical images in two splits of one dataset: a copy made while sorting files into split
folders puts a test image among the training images, and the score is inflated without a word.

Found as duplicate finders find them: files of one size, then of one first 4 KiB, then of one
SHA-256; only files whose size occurs in two splits are opened, and of those only the ones whose
first 4 KiB agree are read whole (a dataset of uncompressed tiles, every file one size, costs one
4 KiB read per file). Near-duplicates (the same tissue re-encoded) are not looked for.

A published Hub dataset's splits cannot be fixed by the person scoring a model on them, so their
copies are counted, not refused (`copies_in_earlier_splits`, as MTEB counts a test set's texts
that are in its training set): the run says so and the result records it."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

from harness.bounded_read import open_regular_file
from harness.errors import HarnessError

HEAD = 4096


def copies_across_splits(files: dict[str, list[Path]]) -> list[list[tuple[str, Path]]]:
    """Groups of (split, file) with one content, each group spanning two splits or more, in the
    order of the files given. Files that cannot be read are left to the reader, which names them;
    empty files are not images, and are left to it too."""
    by_size: dict[int, list[tuple[str, Path]]] = defaultdict(list)
    for split, paths in files.items():
        for path in dict.fromkeys(paths):  # a file listed twice in one split is one file
            try:
                size = path.stat().st_size
            except OSError:
                continue
            if size:
                by_size[size].append((split, path))
    groups = [entries for entries in by_size.values() if _spans_splits(entries)]
    for key in (_head, _sha256):
        groups = [group for entries in groups for group in _split_by(entries, key) if _spans_splits(group)]
    return groups


def copies_in_earlier_splits(keys: dict[str, list]) -> tuple[dict[str, int], tuple | None]:
    """`keys`: each split's items' contents (or None for an item not compared), splits in their
    order (train, val, test). For each split after the first, how many of its items have the content
    of an item of an earlier split (a validation image that is a training image; a test image that
    is either), and the first such pair as (split, row, earlier split, row)."""
    seen: dict = {}  # content -> (split, row) of its first item
    counts: dict[str, int] = {}
    first = None
    for index, (split, values) in enumerate(keys.items()):
        found = {}
        for row, value in enumerate(values):
            if value is None:
                continue
            if index and value in seen:
                counts[split] = counts.get(split, 0) + 1
                first = first or (split, row, *seen[value])
            found.setdefault(value, (split, row))
        for value, where in found.items():
            seen.setdefault(value, where)
    return counts, first


def staged_keys(blobs: dict) -> dict[str, list]:
    """Each split's items' content keys for `copies_in_earlier_splits`, from their encoded bytes (an
    arrow binary array per split): (length, first 4 KiB, SHA-256), each stage computed only for the
    items whose key so far occurs in two splits; None for the others, which have no copy there."""
    import pyarrow.compute as pc

    keys = {split: [(n,) if n else None for n in pc.binary_length(values).to_pylist()]  # null/empty: no image
            for split, values in blobs.items()}
    # the first 4 KiB by a 16-byte digest of them: 100,000 uncompressed tiles (every one a candidate)
    # would otherwise hold 400 MB of heads
    for stage in (lambda b: hashlib.blake2b(b[:HEAD], digest_size=16).digest(), lambda b: hashlib.sha256(b).digest()):
        spans: dict = defaultdict(set)
        for split, values in keys.items():
            for key in values:
                if key is not None:
                    spans[key].add(split)
        shared = {key for key, splits in spans.items() if len(splits) > 1}
        keys = {split: [key + (stage(blobs[split][row].as_buffer()),) if key in shared else None
                        for row, key in enumerate(values)] for split, values in keys.items()}
    return keys


def refuse_copies_across_splits(files: dict[str, list[Path]], root: Path | None, what: str) -> None:
    """One line starting with `what` (the dataset's folder or table), naming the first copy (its path
    under `root`, or whole) and how many there are, where any image is in two splits."""
    groups = copies_across_splits(files)
    if not groups:
        return
    (split_a, first), (split_b, second) = groups[0][0], next(e for e in groups[0] if e[0] != groups[0][0][0])
    more = f" ({len(groups)} images in all are in two splits)" if len(groups) > 1 else ""
    raise HarnessError(f"{what}: {_name(first, root)} (split '{split_a}') and {_name(second, root)} (split "
                       f"'{split_b}') are one image, byte for byte{more}: an image in two splits leaks between them "
                       "and inflates the score; keep one copy")


def _spans_splits(entries: list[tuple[str, Path]]) -> bool:
    return len({split for split, _ in entries}) > 1


def _split_by(entries: list[tuple[str, Path]], key) -> list[list[tuple[str, Path]]]:
    groups: dict[bytes, list[tuple[str, Path]]] = defaultdict(list)
    for split, path in entries:
        value = key(path)
        if value is not None:
            groups[value].append((split, path))
    return list(groups.values())


def _head(path: Path) -> bytes | None:
    try:
        with open_regular_file(path) as file:  # a FIFO swapped in since its size was read is not waited on
            return file.read(HEAD)
    except OSError:
        return None


def _sha256(path: Path) -> bytes | None:
    digest = hashlib.sha256()
    try:
        with open_regular_file(path) as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.digest()


def _name(path: Path, root: Path | None) -> str:
    try:
        return f"'{path.relative_to(root).as_posix()}'" if root is not None else f"'{path}'"
    except ValueError:
        return f"'{path}'"
