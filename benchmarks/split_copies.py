"""The check for one image in two splits (harness/sources/split_copies.py) against reading every
image once, the least any pass over the images costs, and against decoding every image once, the
least an embedding of them costs (before any model runs).

Writes --tiles tiles of --size px, split 80/20 into train and test, plus --copies test files that
are copies of training tiles, in two formats:
  bmp   uncompressed: every file one size, so every file is a candidate and its first 4 KiB is read
        (the check's worst case)
  png   compressed: sizes differ, so only files of a size both splits hold are opened
and prints, per format, the check's seconds, the seconds to read every file whole once and to decode
every image once (PIL), the check's ratio to each, and the copies found (must be --copies). All from
the page cache (the files were just written): on a cold disk all grow, the reads more (they read
every byte).

Then the same tiles as a Hub dataset (one parquet file per split, an Image column, read through
`datasets.load_dataset("parquet")` as the `hf` source reads them): the count a published dataset
gets instead of a refusal (staged_keys + copies_in_earlier_splits, on the encoded bytes in the
table) against decoding every image of the table once.

Usage: python benchmarks/split_copies.py [--tiles 5000] [--size 224] [--copies 7]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from harness.sources.split_copies import copies_across_splits, copies_in_earlier_splits, staged_keys


def write_tiles(folder: Path, tiles: int, size: int, copies: int, suffix: str) -> dict[str, list[Path]]:
    rng = np.random.default_rng(0)
    files: dict[str, list[Path]] = {"train": [], "test": []}
    for index in range(tiles):
        split = "test" if index % 5 == 0 else "train"
        path = folder / split / f"{index}.{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.clip(rng.normal(150, 40, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(path)
        files[split].append(path)
    for index, source in enumerate(files["train"][:copies]):
        copy = folder / "test" / f"copy-{index}.{suffix}"
        shutil.copyfile(source, copy)
        files["test"].append(copy)
    return files


def read_all(files: dict[str, list[Path]]) -> int:
    return sum(len(path.read_bytes()) for paths in files.values() for path in paths)


def decode_all(files: dict[str, list[Path]]) -> int:
    total = 0
    for paths in files.values():
        for path in paths:
            with Image.open(path) as image:
                total += np.asarray(image.convert("RGB")).shape[0]
    return total


def timed(work, files: dict[str, list[Path]]) -> tuple[float, object]:
    started = time.perf_counter()
    outcome = work(files)
    return time.perf_counter() - started, outcome


def measure(files: dict[str, list[Path]]) -> tuple[float, float, float, int]:
    """(check s, read s, decode s, copies found), every timing from the page cache."""
    read_all(files)
    check_s, groups = timed(copies_across_splits, files)
    read_s, _ = timed(read_all, files)
    decode_s, _ = timed(decode_all, files)
    return check_s, read_s, decode_s, len(groups)


def hub_tables(folder: Path, files: dict[str, list[Path]]) -> dict:
    """Each split's files as a parquet file of an Image column (their bytes as they are), loaded as
    the `hf` source loads a Hub dataset's split."""
    from datasets import Dataset, Features, Image as ImageFeature, load_dataset
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    tables = {}
    for split, paths in files.items():
        target = folder / f"{split}.parquet"
        rows = {"image": [{"bytes": path.read_bytes(), "path": None} for path in paths]}
        Dataset.from_dict(rows, features=Features({"image": ImageFeature()})).to_parquet(str(target))
        tables[split] = load_dataset("parquet", data_files={"rows": [str(target)]}, split="rows",
                                     cache_dir=str(folder / "datasets"))
    return tables


def hub_check(tables: dict) -> int:
    import pyarrow.compute as pc

    blobs = {split: pc.struct_field(table.data.column("image"), "bytes") for split, table in tables.items()}
    counts, _ = copies_in_earlier_splits(staged_keys(blobs))
    return sum(counts.values())


def hub_decode(tables: dict) -> int:
    return sum(np.asarray(table[i]["image"].convert("RGB")).shape[0] for table in tables.values()
               for i in range(len(table)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=5000)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--copies", type=int, default=7)
    args = parser.parse_args()
    print(f"{args.tiles} tiles of {args.size} px, 80/20 train/test, {args.copies} test files copied from train")
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in ("bmp", "png"):
            files = write_tiles(Path(tmp) / suffix, args.tiles, args.size, args.copies, suffix)
            check_s, read_s, decode_s, found = measure(files)
            print(f"{suffix}  check {check_s:7.3f} s   read every file {read_s:7.3f} s (ratio {check_s / read_s:5.2f})   "
                  f"decode every image {decode_s:7.3f} s (ratio {check_s / decode_s:5.3f})   copies found {found} "
                  f"(of {args.copies})")
            tables = hub_tables(Path(tmp) / f"{suffix}-hub", files)
            hub_check(tables)  # a first pass, as the file check's timing follows a read: both from the page cache
            check_s, found = timed(hub_check, tables)
            decode_s, _ = timed(hub_decode, tables)
            print(f"{suffix}  as a Hub dataset: count {check_s:7.3f} s   decode every image {decode_s:7.3f} s "
                  f"(ratio {check_s / decode_s:5.3f})   copies counted {found} (of {args.copies})")


if __name__ == "__main__":
    main()
