"""Synthetic whole slides, generated into the cache on first use (harness/synth/slide_suite.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import ValidationError

from harness.errors import HarnessError, first_problem
from harness.sources.base import Availability, digest
from harness.sources.slide_source import SlideColumns, SlideSource
from harness.synth.slide_suite import GRADES, MPP, SLIDE_GENERATOR_VERSION, SyntheticSlideParams, build_slide_suite
from harness.synth.slide_suite import tile_latents as latents_under
from harness.synth.suite_writer import discard_if_damaged


class SyntheticSlideSource(SlideSource):
    def __init__(self, name, spec, context):
        try:
            self.params = SyntheticSlideParams.model_validate(spec.params)
        except ValidationError as error:
            loc, message = first_problem(error)
            raise HarnessError(f"dataset '{name}': key 'params.{'.'.join(loc)}': {message}") from None
        super().__init__(name, spec, context)
        self.classes = list(GRADES)
        generator = digest({"version": SLIDE_GENERATOR_VERSION, "params": self.params.model_dump()})
        self.folder = context.cache_dir / "synthetic" / f"slides-{generator}"

    def _columns(self) -> SlideColumns:
        return SlideColumns("slide", "patient", "label", "time", "event", None)

    @property
    def csv_path(self) -> Path:
        return self.folder / "slides.csv"

    def availability(self) -> Availability:
        return Availability(ok=True)  # generated on demand

    def prepare(self) -> None:
        discard_if_damaged(self.folder)  # a finished suite with a slide cut short since is generated again
        if not (self.folder / "meta.json").exists():
            build_slide_suite(self.folder, self.params)

    def fingerprint(self) -> str:
        return digest({"slides": self.folder.name, "tiling": self.tiling.model_dump()})

    def tile_latents(self, slide: Path, coords: np.ndarray) -> np.ndarray:
        grid = np.load(Path(slide).with_suffix(".latents.npy"))
        side = int(round(self.tiling.tile_size * self.tiling.target_mpp / MPP))  # tile side in level-0 px
        return latents_under(grid, coords, side, self.params.cell)

    def download(self) -> str:
        self.prepare()
        return f"{self.name}: generated at {self.folder}"
