"""Dataset sources: where a registry dataset's tiles, labels (and latents) come from."""

from __future__ import annotations

from typing import Mapping

from harness.registry import (CsvDataset, DatasetSpec, HubDataset, ImageFolderDataset, SynthDataset,
                              TransformedDataset, WsiDataset)
from harness.sources.base import DataContext, TileSource


def open_source(name: str, spec: DatasetSpec, context: DataContext,
                datasets: Mapping[str, DatasetSpec] | None = None) -> TileSource:
    """The source of one dataset; `datasets` (the registry's) resolves a transformed dataset's base."""
    if isinstance(spec, SynthDataset) and spec.generator == "slides":
        from harness.sources.synthetic_slides import SyntheticSlideSource

        return SyntheticSlideSource(name, spec, context)
    if isinstance(spec, WsiDataset):
        from harness.sources.slide_source import SlideSource

        return SlideSource(name, spec, context)
    if isinstance(spec, SynthDataset):
        from harness.sources.synthetic import SyntheticTileSource

        return SyntheticTileSource(name, spec, context)
    if isinstance(spec, HubDataset):
        from harness.sources.hub import HubTileSource

        return HubTileSource(name, spec, context)
    if isinstance(spec, ImageFolderDataset):
        from harness.sources.image_folder import ImageFolderSource

        return ImageFolderSource(name, spec, context)
    if isinstance(spec, CsvDataset):
        from harness.sources.csv_table import CsvTableSource

        return CsvTableSource(name, spec, context)
    if isinstance(spec, TransformedDataset):
        from harness.sources.transformed import TransformedSource

        if datasets is None or spec.base not in datasets:
            raise ValueError(f"dataset '{name}': its base '{spec.base}' is not among the given datasets")
        return TransformedSource(name, spec, context, open_source(spec.base, datasets[spec.base], context, datasets))
    raise TypeError(f"no source for {type(spec).__name__}")


__all__ = ["DataContext", "TileSource", "open_source"]
