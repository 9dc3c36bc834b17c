"""Benchmark harness for computational-pathology foundation models."""

__version__ = "0.1.0"
