"""Shared fixtures. The Hub is unreachable here: HF_HUB_OFFLINE=1 makes every Hub call fail
fast (instead of retrying ~20 s) and must be set before huggingface_hub is imported."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.registries import TINY_REGISTRY

os.environ["HF_HUB_OFFLINE"] = "1"
# Under pytest-xdist (pyproject's addopts: one worker per core) each worker computes on one thread:
# with each worker's OpenMP and BLAS pools on every core, two workers took longer than one process
# (they waited on each other's threads). Set before NumPy or torch is imported; a user's value is kept.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
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


# pytest-xdist (pyproject's addopts: `-n auto --dist loadgroup`) spreads the tests over the cores;
# some must share one worker:
# - the tests that read the instruments' run of the whole synthetic suite (a session fixture of about
#   two minutes), so that it is computed once;
# - the tests that build this checkout with pip (the wheel, the Space's venv): two builds at once
#   collide in the checkout's build/ folder;
# - a module's tests that share a costly module fixture, so that it is built once.
SHARED_SUITE_FIXTURES = {"instrument_results", "colour_results"}
BUILDS_THE_CHECKOUT = {"tests.test_packaging", "tests.leaderboard.test_browser"}
ONE_WORKER = "shared-suite-and-builds"


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups off the marks
def pytest_collection_modifyitems(config, items):
    if not config.pluginmanager.hasplugin("xdist"):
        return
    one_worker = set(BUILDS_THE_CHECKOUT)
    one_worker |= {item.module.__name__ for item in items
                   if hasattr(item, "module") and SHARED_SUITE_FIXTURES & set(item.fixturenames)}
    for item in items:
        if not hasattr(item, "module"):
            continue
        module = item.module.__name__
        if module in one_worker:
            item.add_marker(pytest.mark.xdist_group(ONE_WORKER))
        elif any(d.scope == "module" for defs in item._fixtureinfo.name2fixturedefs.values() for d in defs):
            item.add_marker(pytest.mark.xdist_group(module))


def pytest_configure(config):
    """xdist groups by a suffix it writes into node ids; pytest 9.2 keeps node ids where pytest-xdist
    3.8's write has no effect (pytest-dev/pytest-xdist#1386): the groups would be silently ignored,
    the suite's run computed twice and two builds of the checkout would collide."""
    if config.pluginmanager.hasplugin("xdist") and config.getoption("dist", "no") == "loadgroup":
        from importlib.metadata import version

        def release(name: str) -> tuple[int, ...]:
            return tuple(int(part) for part in version(name).split(".")[:2] if part.isdigit())

        if release("pytest") >= (9, 2) and release("pytest-xdist") <= (3, 8):
            raise pytest.UsageError(f"pytest {version('pytest')} with pytest-xdist {version('pytest-xdist')} ignores "
                                    "the tests' worker groups (pytest-dev/pytest-xdist#1386): install pyproject's "
                                    "pytest (<9.2), or run with -n 0")


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per core this process may use, at most 4 (each worker generates its own
    small test caches; the shared suite run, in one worker, bounds the wall time anyway)."""
    from harness.scoring.parallel_fits import spare_cores

    return min(spare_cores(), 4)
