"""Dataset sources: where a registry dataset's tiles, labels (and latents) come from."""

from __future__ import annotations

from harness.registry import CsvDataset, DatasetSpec, HubDataset, ImageFolderDataset, SynthDataset
from harness.sources.base import DataContext, TileSource


def open_source(name: str, spec: DatasetSpec, context: DataContext) -> TileSource:
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
    raise TypeError(f"no source for {type(spec).__name__}")


__all__ = ["DataContext", "TileSource", "open_source"]
