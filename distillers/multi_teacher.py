"""multi_teacher: several teachers, one adaptor each (per nested Matryoshka dim), targets PHI-S
standardised per teacher so that no teacher dominates (distillers/teachers.py), the losses
summed with the teachers' weights. It is feature_kd's loss over several teachers.
"""

from __future__ import annotations

from distillers.feature_kd import FeatureKD


class MultiTeacher(FeatureKD):
    """Same loss as FeatureKD summed over teachers with their weights (FeatureKD with one teacher)."""
