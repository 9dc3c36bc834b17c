"""Task families: each turns cached embeddings + a task spec into metrics.

A family is a `harness.evaluation.TaskFamily` subclass. Adding one is a module and one call,
`register_family(MyFamily)`, here for the built-in ones, or in the module itself for a family of
your own (or through the `pathology_harness.families` entry point of another package, which the
harness loads with the table).
"""

from __future__ import annotations

from importlib.metadata import entry_points

from harness.evaluation import TaskFamily
from harness.plugins import register_plugin
from tasks.report_generation import ReportGeneration
from tasks.retrieval import Retrieval
from tasks.slide_classification import SlideClassification
from tasks.stain_robustness import StainRobustness
from tasks.survival import Survival
from tasks.tile_classification import TileClassification
from tasks.transform_invariance import TransformInvariance
from tasks.vqa import VisualQuestionAnswering

FAMILIES: dict[str, type[TaskFamily]] = {}  # family name (tasks.yaml's `family:`) -> class


def register_family(family: type[TaskFamily]) -> type[TaskFamily]:
    """Make `family: <family.name>` valid in tasks.yaml (usable as a class decorator)."""
    return register_plugin(FAMILIES, family, TaskFamily, "family")


for _family in (TileClassification, Retrieval, SlideClassification, Survival, VisualQuestionAnswering,
                ReportGeneration, StainRobustness, TransformInvariance):
    register_family(_family)

for _entry in entry_points(group="pathology_harness.families"):  # families of other packages
    register_family(_entry.load())
