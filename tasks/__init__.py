"""Task families: each turns cached embeddings + a task spec into metrics.

Adding a family = a module here with a class like those below, and a line in FAMILIES.
"""

from tasks.retrieval import Retrieval
from tasks.tile_classification import TileClassification

FAMILIES = {family.name: family for family in (TileClassification, Retrieval)}
