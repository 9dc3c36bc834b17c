"""Distillation: big teachers into small students (`harness distill`).

Each method is a module that registers its class (distillers/method.py); importing this package
registers the built-in ones. A method of your own: subclass DistillationMethod and call
register_method (or decorate the class with it); for `harness distill` to see it, declare its
module under the `pathology_harness.methods` entry point of your package.
"""

from harness.distillers import cross_magnification, feature_kd, logit_kd  # noqa: F401 - they register themselves
from harness.distillers.method import METHODS, DistillationMethod, register_method
from harness.plugins import load_plugin_modules

load_plugin_modules("pathology_harness.methods")  # modules of other installed packages that register methods

__all__ = ["METHODS", "DistillationMethod", "register_method"]
