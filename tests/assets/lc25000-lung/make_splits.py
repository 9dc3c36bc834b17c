"""tiles.csv for the 600 LC25000 lung tiles: a train/val/test split that keeps near-duplicates
together. LC25000 was augmented (rotations, flips) from ~250 originals per class, so copies of
one original cross any random split and inflate every score.

Near-duplicates: two tiles whose 48 x 48 greyscale thumbnails correlate above THRESHOLD (Pearson)
under one of the 8 dihedral transforms (rot90 x flip) of one of them are joined; the connected
groups are assigned whole to a split, class by class (largest groups first, each to the split
furthest below its share: 60 / 20 / 20). Rotations by arbitrary angles are not detected, so some
overlap may remain (the count found is printed).

Usage: python make_splits.py   (writes tiles.csv beside this file)
"""

import csv
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).parent
THRESHOLD = 0.9
SHARES = {"train": 0.6, "val": 0.2, "test": 0.2}


def thumbnails(files: list[str]) -> np.ndarray:
    return np.stack([np.asarray(Image.open(HERE / f).convert("L").resize((48, 48), Image.BILINEAR), np.float32)
                     for f in files])


def unit(x: np.ndarray) -> np.ndarray:
    x = x.reshape(len(x), -1)
    x = x - x.mean(1, keepdims=True)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def groups(images: np.ndarray) -> np.ndarray:
    base = unit(images)
    best = np.full((len(images), len(images)), -1.0)
    for k in range(4):
        for flip in (False, True):
            turned = np.rot90(images, k, axes=(1, 2))
            best = np.maximum(best, unit(turned[:, :, ::-1] if flip else turned) @ base.T)
    np.fill_diagonal(best, -1.0)
    parent = list(range(len(images)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(best > THRESHOLD)):
        parent[root(int(i))] = root(int(j))
    return np.array([root(i) for i in range(len(images))])


def main() -> None:
    rows = list(csv.DictReader(open(HERE / "manifest.csv")))
    group = groups(thumbnails([r["file"] for r in rows]))
    split_of = {}
    for name in sorted({r["class"] for r in rows}):
        members = [i for i, r in enumerate(rows) if r["class"] == name]
        sizes: dict[int, int] = {}
        for i in members:
            sizes[group[i]] = sizes.get(group[i], 0) + 1
        filled = dict.fromkeys(SHARES, 0)
        for g in sorted(sizes, key=lambda g: (-sizes[g], g)):
            split = min(SHARES, key=lambda s: filled[s] / (SHARES[s] * len(members)))
            split_of[g] = split
            filled[split] += sizes[g]
    with open(HERE / "tiles.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "label", "split", "group"])
        for i, r in enumerate(rows):
            writer.writerow([r["file"], r["class"], split_of[group[i]], int(group[i])])
    joined = sum(1 for i in range(len(rows)) if (group == group[i]).sum() > 1)
    print(f"{joined} of {len(rows)} tiles have a near-duplicate (dihedral correlation > {THRESHOLD}); "
          f"{len(set(group))} groups")
    for split in SHARES:
        print(split, sum(1 for i in range(len(rows)) if split_of[group[i]] == split))


if __name__ == "__main__":
    main()
