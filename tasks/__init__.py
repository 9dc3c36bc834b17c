"""Task families: each turns cached embeddings + a task spec into metrics.

A family is a `harness.evaluation.TaskFamily` subclass. Adding one is a module and one call,
`register_family(MyFamily)`, here for the built-in ones, or in the module itself for a family of
your own, or through the `pathology_harness.families` entry point of another installed package
(a family class, or a module that registers its families), which the harness loads with the table.
"""

from __future__ import annotations

from harness.evaluation import TaskFamily
from harness.plugins import load_plugin_modules, register_plugin
from harness.tasks.centre_robustness import CentreRobustness
from harness.tasks.gene_expression import GeneExpression
from harness.tasks.report_generation import ReportGeneration
from harness.tasks.retrieval import Retrieval
from harness.tasks.segmentation import Segmentation
from harness.tasks.slide_classification import SlideClassification
from harness.tasks.stain_robustness import StainRobustness
from harness.tasks.survival import Survival
from harness.tasks.tile_classification import TileClassification
from harness.tasks.transform_invariance import TransformInvariance
from harness.tasks.vqa import VisualQuestionAnswering

FAMILIES: dict[str, type[TaskFamily]] = {}  # family name (tasks.yaml's `family:`) -> class


def register_family(family: type[TaskFamily]) -> type[TaskFamily]:
    """Make `family: <family.name>` valid in tasks.yaml (usable as a class decorator)."""
    return register_plugin(FAMILIES, family, TaskFamily, "family")


for _family in (TileClassification, Retrieval, SlideClassification, Survival, VisualQuestionAnswering,
                ReportGeneration, StainRobustness, TransformInvariance, GeneExpression, Segmentation,
                CentreRobustness):
    register_family(_family)

# families of other installed packages: a family class is entered here; a module registers its own on import
load_plugin_modules("pathology_harness.families", lambda loaded: register_family(loaded) if isinstance(loaded, type)
                    else None)
