"""Shared fixtures. The Hub is unreachable here: HF_HUB_OFFLINE=1 makes every Hub call fail
fast (instead of retrying ~20 s) and must be set before huggingface_hub is imported."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.registries import TINY_REGISTRY

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HARNESS_CACHE", str(Path(os.environ.get("PYTEST_TMP", "/tmp")) / "harness-test-cache"))
# The cache the README's run uses (CI runs it first with this HARNESS_CACHE): tests of the full
# synthetic suite reuse its generated data and embeddings instead of recomputing them.
SUITE_CACHE = Path(os.environ["HARNESS_CACHE"])

@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One cache for the session, so the synthetic data is generated once."""
    path = tmp_path_factory.mktemp("cache")
    os.environ["HARNESS_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def suite_cache() -> Path:
    """A persistent cache for tests of the full-size synthetic suite (see SUITE_CACHE)."""
    SUITE_CACHE.mkdir(parents=True, exist_ok=True)
    return SUITE_CACHE


@pytest.fixture(scope="session")
def tiny_registry_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("registry") / "tiny.yaml"
    path.write_text(TINY_REGISTRY)
    return path


@pytest.fixture(scope="session")
def instrument_results(suite_cache, tmp_path_factory) -> Path:
    """`harness run --model synth-oracle --model random-noise --tasks all --log-samples`, once per
    session: the instruments' bounds on every synthetic task, real tasks recorded as skipped, and
    the per-item samples beside each result."""
    from harness.cli import main

    out = tmp_path_factory.mktemp("instrument-results")
    code = main(["run", "--model", "synth-oracle", "--model", "random-noise", "--tasks", "all",
                 "--output", str(out), "--cache-dir", str(suite_cache), "--log-samples"])
    assert code == 0
    return out


@pytest.fixture(scope="session")
def colour_results(suite_cache, tmp_path_factory) -> Path:
    """colour-stats on the two morphology-only tasks, gene expression and segmentation (a folder of its own:
    the leaderboard tests read instrument_results, whose models all share every task)."""
    from harness.cli import main

    out = tmp_path_factory.mktemp("colour-results")
    code = main(["run", "--model", "colour-stats", "--tasks", "synth-grade,synth-mitosis,synth-st,synth-seg",
                 "--output", str(out), "--cache-dir", str(suite_cache)])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def tiny_fm_state():
    """A model author's weights: a seeded random vit_tiny state dict (tests/support/checkpoints.py)."""
    from tests.support.checkpoints import tiny_fm_state as make

    return make()
