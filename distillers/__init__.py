"""Distillation: big teachers into small students (`harness distill`).

Each method is a module that registers its class (distillers/method.py); importing this package
registers the built-in ones. A method of your own: subclass DistillationMethod and call
register_method (or decorate the class with it) before `distill` runs.
"""

from distillers import cross_magnification, feature_kd, logit_kd  # noqa: F401 - they register themselves
from distillers.method import METHODS, DistillationMethod, register_method

__all__ = ["METHODS", "DistillationMethod", "register_method"]
