"""The test suite's own set-up (tests/conftest.py): under pytest-xdist the tests that read the
instruments' shared run, or build this checkout with pip, share one worker; a pytest whose node ids
defeat xdist's groups is refused in one line."""

from __future__ import annotations

import pytest

import tests.conftest as conftest

SHARED = ("tests/harness/test_runner.py::", "tests/leaderboard/test_browser.py::", "tests/test_packaging.py::",
          "tests/test_cli.py::test_instruments_bound_the_synthetic_suite")


def test_the_shared_run_and_the_builds_are_in_one_worker_group(request):
    """Every worker collects every test; xdist sends a group, named in the node id, to one worker."""
    if not getattr(request.config.option, "loadgroup", False):  # set in xdist's workers only
        pytest.skip("the suite runs without xdist's --dist loadgroup (-n 0): nothing is grouped")
    ids = [item.nodeid for item in request.session.items]
    shared = [i for i in ids if i.startswith(SHARED)]
    if len(shared) < len(SHARED):
        pytest.skip("checks the whole suite's collection: run without selecting tests")
    assert all(i.endswith(f"@{conftest.ONE_WORKER}") for i in shared), [i for i in shared if "@" not in i]
    # a module with a module-scoped fixture keeps its users together, under the module's name
    assert any(i.endswith("@tests.harness.test_models") for i in ids)
    assert not any(i.startswith("tests/test_suite_setup.py::") and "@" in i for i in ids)  # the rest spread


class Config:
    """What the guard reads of pytest's config: whether xdist is there and its --dist."""

    def __init__(self, dist: str):
        self.dist, self.pluginmanager = dist, self

    def hasplugin(self, name: str) -> bool:
        return name == "xdist"

    def getoption(self, name: str, default=None):
        return self.dist if name == "dist" else default


@pytest.mark.parametrize("pytest_version, refused", [("9.2.0", True), ("9.1.1", False), ("8.4.2", False)])
def test_a_pytest_that_defeats_the_groups_is_refused_in_one_line(monkeypatch, pytest_version, refused):
    import importlib.metadata

    versions = {"pytest": pytest_version, "pytest-xdist": "3.8.0"}
    monkeypatch.setattr(importlib.metadata, "version", versions.__getitem__)
    if not refused:
        conftest.pytest_configure(Config("loadgroup"))
        return
    with pytest.raises(pytest.UsageError) as refusal:
        conftest.pytest_configure(Config("loadgroup"))
    message = str(refusal.value)
    assert "\n" not in message and "pytest-dev/pytest-xdist#1386" in message and "-n 0" in message
    conftest.pytest_configure(Config("no"))  # one process: nothing to group, nothing refused
