"""Dataset sources: where a registry dataset's items, labels (and latents) come from.

A source kind is registered by the name a dataset's `source:` key gives, with the schema of its
keys and a function that opens it. Adding a kind is one module and one call:

    register_source_kind("myformat", MyFormatDataset, lambda name, spec, context, datasets:
                         MyFormatSource(name, spec, context))

after which `source: myformat` datasets validate in tasks.yaml and run like any other. For
`harness` itself to see it, declare that module under the `pathology_harness.sources` entry
point of your package: it is imported with this one.
"""

from __future__ import annotations

from importlib import import_module
from typing import Callable, Mapping

from pydantic import BaseModel

from harness.plugins import load_plugin_modules
from harness.registry import DATASET_SCHEMAS, DatasetSpec
from harness.sources.base import DataContext, Source, TileSource

# (dataset name, its spec, the data context, the registry's datasets) -> an unopened source
SourceOpener = Callable[[str, DatasetSpec, DataContext, Mapping[str, DatasetSpec]], Source]

_OPENERS: dict[str, SourceOpener] = {}


def register_source_kind(name: str, schema: type[BaseModel], opener: SourceOpener) -> None:
    """Declare `source: <name>`: its keys (a pydantic model with a `source: Literal[name]` field)
    and how a dataset of that kind is opened."""
    DATASET_SCHEMAS[name] = schema
    _OPENERS[name] = opener


def open_source(name: str, spec: DatasetSpec, context: DataContext,
                datasets: Mapping[str, DatasetSpec] | None = None) -> Source:
    """The source of one dataset; `datasets` (the registry's) resolves a dataset built on another."""
    opener = _OPENERS.get(spec.source)
    if opener is None:
        raise ValueError(f"dataset '{name}': no source kind '{spec.source}' is registered")
    return opener(name, spec, context, datasets or {})


def _class(module: str, cls: str) -> SourceOpener:
    """An opener that imports its module only when a dataset of that kind is opened."""
    return lambda name, spec, context, datasets: getattr(import_module(module), cls)(name, spec, context)


def _synthetic(name, spec, context, datasets) -> Source:
    if spec.generator == "slides":
        from harness.sources.synthetic_slides import SyntheticSlideSource

        return SyntheticSlideSource(name, spec, context)
    from harness.sources.synthetic import SyntheticTileSource

    return SyntheticTileSource(name, spec, context)


def _transformed(name, spec, context, datasets) -> Source:
    from harness.sources.transformed import TransformedSource

    if spec.base not in datasets:
        raise ValueError(f"dataset '{name}': its base '{spec.base}' is not among the given datasets")
    return TransformedSource(name, spec, context, open_source(spec.base, datasets[spec.base], context, datasets))


for _name, _opener in {"synth": _synthetic, "hf": _class("harness.sources.hub", "HubTileSource"),
                       "imagefolder": _class("harness.sources.image_folder", "ImageFolderSource"),
                       "csv": _class("harness.sources.csv_table", "CsvTableSource"),
                       "transformed": _transformed, "wsi": _class("harness.sources.slide_source", "SlideSource"),
                       "hest": _class("harness.sources.hest_bench", "HestBenchSource"),
                       "masks": _class("harness.sources.segmentation_folders", "SegmentationFolderSource")}.items():
    register_source_kind(_name, DATASET_SCHEMAS[_name], _opener)

load_plugin_modules("pathology_harness.sources")  # modules of other installed packages that register kinds

__all__ = ["DataContext", "Source", "SourceOpener", "TileSource", "open_source", "register_source_kind"]
