"""A perturbed view of another dataset: split `clean` plus one split per transform.

Item i of every split is the same tile of the base dataset's split (evenly spaced items when
`max_items` caps it); the perturbation runs in the DataLoader workers, seeded per item, so the
views are reproducible and nothing is written to disk but embeddings.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from harness.perturbations import PERTURBATION_VERSION, PERTURBATIONS
from harness.registry import TransformedDataset
from harness.sources.base import Availability, DataContext, TileSource, digest
from harness.sources.image_files import tile_pixels


class PerturbedImages:
    def __init__(self, images: Sequence[Any], indices: np.ndarray, transform: str | None, seed: int):
        self.images, self.indices, self.transform, self.seed = images, indices, transform, seed

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> np.ndarray:
        index = int(self.indices[i])
        item = self.images[index]  # an array or a PIL image
        tile = tile_pixels(item)
        if self.transform is None:
            return tile
        return PERTURBATIONS[self.transform](tile, np.random.default_rng([self.seed, index]))


class TransformedSource(TileSource):
    spec: TransformedDataset

    def __init__(self, name: str, spec: TransformedDataset, context: DataContext, base: TileSource):
        super().__init__(name, spec, context)
        self.base = base

    def availability(self) -> Availability:
        return self.base.availability()

    def prepare(self) -> None:
        self.base.prepare()
        if self.spec.split not in self.base.split_names():
            raise ValueError(f"dataset '{self.name}': base '{self.base.name}' has no split '{self.spec.split}' "
                             f"(splits: {', '.join(self.base.split_names())})")

    def fingerprint(self) -> str:
        return digest({"base": self.base.fingerprint(), "split": self.spec.split, "max_items": self.spec.max_items,
                       "transforms": self.spec.transforms, "seed": self.spec.seed, "version": PERTURBATION_VERSION})

    def _indices(self) -> np.ndarray:
        n = len(self.base.images(self.spec.split))
        if self.spec.max_items is None or self.spec.max_items >= n:
            return np.arange(n)
        return np.linspace(0, n - 1, self.spec.max_items).round().astype(np.int64)

    def split_names(self) -> list[str]:
        return ["clean", *self.spec.transforms]

    def class_names(self) -> list[str]:
        return self.base.class_names()

    def labels(self, split: str) -> np.ndarray | None:
        labels = self.base.labels(self.spec.split)
        return None if labels is None else labels[self._indices()]

    def latents(self, split: str) -> np.ndarray | None:
        latents = self.base.latents(self.spec.split)
        return None if latents is None else latents[self._indices()]

    def images(self, split: str) -> PerturbedImages:
        transform = None if split == "clean" else split
        return PerturbedImages(self.base.images(self.spec.split), self._indices(), transform, self.spec.seed)

    def download(self) -> str:
        return self.base.download()
