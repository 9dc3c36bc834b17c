"""Synthetic datasets, generated into the cache on first use."""

from __future__ import annotations

import json
import numpy as np
from pydantic import ValidationError

from harness.errors import HarnessError, first_problem

from harness.registry import SynthDataset
from harness.sources.base import (
    Availability, NpyImages, SpotTable, TileOrigins, TileSource, check_text_records, digest,
)
from harness.synth.annotations import report_records, vqa_records
from harness.synth.domains import domain_name
from harness.synth.suite_writer import discard_if_damaged
from harness.synth.plism_suite import PLISM_GENERATOR_VERSION, SyntheticPlismParams, build_plism_suite
from harness.synth.tile_suite import GENERATOR_VERSION, SyntheticTileParams, build_tile_suite, tile_protocol

# generator name -> (parameters, builder, version)
GENERATORS = {
    "tiles": (SyntheticTileParams, build_tile_suite, GENERATOR_VERSION),
    "plism": (SyntheticPlismParams, build_plism_suite, PLISM_GENERATOR_VERSION),
}


class SyntheticTileSource(TileSource):
    spec: SynthDataset

    def __init__(self, name, spec, context):
        super().__init__(name, spec, context)
        params_type, self._build, self._version = GENERATORS[spec.generator]
        try:
            self.params = params_type.model_validate(spec.params)
        except ValidationError as error:
            loc, message = first_problem(error)
            raise HarnessError(f"dataset '{name}': key 'params.{'.'.join(loc)}': {message}") from None
        # named by the images alone: datasets that differ only in annotations share tiles and embeddings
        self.folder = context.cache_dir / "synthetic" / f"{spec.generator}-{self.fingerprint()}"

    def availability(self) -> Availability:
        return Availability(ok=True)  # generated on demand

    def prepare(self) -> None:
        discard_if_damaged(self.folder)  # a finished dataset cut short since is generated again
        if not (self.folder / "meta.json").exists():
            self._build(self.folder, self.params)

    def fingerprint(self) -> str:
        params = self.params.identity() if hasattr(self.params, "identity") else self.params.model_dump()
        return digest({"generator": self.spec.generator, "version": self._version, "params": params})

    def _meta(self) -> dict:
        return json.loads((self.folder / "meta.json").read_text())

    def split_names(self) -> list[str]:
        if isinstance(self.params, SyntheticPlismParams):
            return [domain_name(stain, scanner) for stain, scanner in self.params.domains()]
        return list(self.params.per_class)

    def class_names(self) -> list[str]:
        return list(self._meta()["classes"])

    def labels(self, split: str) -> np.ndarray:
        return np.load(self.folder / split / "labels.npy")

    def images(self, split: str) -> NpyImages:
        return NpyImages(self.folder / split / "images.npy")

    def latents(self, split: str) -> np.ndarray:
        return np.load(self.folder / split / "latents.npy")

    def masks(self, split: str) -> np.ndarray | None:
        path = self.folder / split / "masks.npy"
        return np.load(path, mmap_mode="r") if getattr(self.params, "masks", False) else None

    def records(self, split: str) -> list[dict] | None:
        if self.spec.annotations == "vqa":
            return check_text_records(vqa_records(self.latents(split), self.params.seed), ("question", "answer"),
                                      f"{self.name}/{split}")
        if self.spec.annotations == "reports":
            return check_text_records(report_records(self.latents(split), self.params.seed), ("report",),
                                      f"{self.name}/{split}")
        return None

    def spots(self, split: str) -> SpotTable | None:
        if self.spec.annotations != "expression":
            return None
        from harness.synth import expression

        latents, seed = self.latents(split), self.params.seed
        draw = self.split_names().index(split)  # each split its own spots, the same patients and genes
        patients = expression.spot_patients(len(latents), seed * 1000 + draw)
        genes, _, _ = expression.gene_programmes(seed)
        return SpotTable(expression.draw_counts(latents, patients, seed, draw), genes, list(patients))

    def origins(self, split: str) -> TileOrigins | None:
        if self.spec.annotations != "centres" or not isinstance(self.params, SyntheticTileParams):
            return None
        n = len(self.labels(split))
        return TileOrigins(slides=[f"{split}-{i:05d}" for i in range(n)],
                           centres=[tile_protocol(self.params, split, i) for i in range(n)])

    def download(self) -> str:
        self.prepare()
        return f"{self.name}: generated at {self.folder}"

