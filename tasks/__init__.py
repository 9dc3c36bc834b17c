"""Task families: each turns cached embeddings + a task spec into metrics.

Adding a family = a module here with a class like those below, and a line in FAMILIES.
"""

from tasks.report_generation import ReportGeneration
from tasks.retrieval import Retrieval
from tasks.slide_classification import SlideClassification
from tasks.stain_robustness import StainRobustness
from tasks.survival import Survival
from tasks.tile_classification import TileClassification
from tasks.transform_invariance import TransformInvariance
from tasks.vqa import VisualQuestionAnswering

FAMILIES = {
    family.name: family
    for family in (TileClassification, Retrieval, SlideClassification, Survival, VisualQuestionAnswering,
                   ReportGeneration, StainRobustness, TransformInvariance)
}
