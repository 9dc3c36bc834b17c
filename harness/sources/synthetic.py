"""Synthetic datasets, generated into the cache on first use."""

from __future__ import annotations

import json
import numpy as np

from harness.registry import SynthDataset
from harness.sources.base import Availability, NpyImages, TileSource, digest
from harness.synth.tile_suite import GENERATOR_VERSION, SyntheticTileParams, build_tile_suite


class SyntheticTileSource(TileSource):
    spec: SynthDataset

    def __init__(self, name, spec, context):
        super().__init__(name, spec, context)
        self.params = SyntheticTileParams.model_validate(spec.params)
        self.folder = context.cache_dir / "synthetic" / f"{name}-{self.fingerprint()}"

    def availability(self) -> Availability:
        return Availability(ok=True)  # generated on demand

    def prepare(self) -> None:
        if not (self.folder / "meta.json").exists():
            build_tile_suite(self.folder, self.params)

    def fingerprint(self) -> str:
        return digest({"generator": self.spec.generator, "version": GENERATOR_VERSION,
                       "params": self.params.model_dump()})

    def _meta(self) -> dict:
        return json.loads((self.folder / "meta.json").read_text())

    def split_names(self) -> list[str]:
        return list(self.params.per_class)

    def class_names(self) -> list[str]:
        return list(self._meta()["classes"])

    def labels(self, split: str) -> np.ndarray:
        return np.load(self.folder / split / "labels.npy")

    def images(self, split: str) -> NpyImages:
        return NpyImages(self.folder / split / "images.npy")

    def latents(self, split: str) -> np.ndarray:
        return np.load(self.folder / split / "latents.npy")

    def download(self) -> str:
        self.prepare()
        return f"{self.name}: generated at {self.folder}"

