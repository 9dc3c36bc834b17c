"""The harness as a user installs it: a built wheel, installed non-editable, run from another folder.

The wheel is installed with `pip install --no-deps --target` and put first on PYTHONPATH, so the
installed copy (not this checkout) is what runs, with the dependencies of the test environment
(a fresh venv would reinstall torch, ~2 minutes, for no extra coverage of the harness's files).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w",
                            str(folder / "dist")], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    [wheel] = (folder / "dist").glob("pathology_harness-*.whl")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                           str(folder / "site"), str(wheel)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder / "site"


def in_another_folder(site: Path, tmp_path: Path, *args: str, code: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(site), HF_HUB_OFFLINE="1")
    env.pop("HARNESS_TASKS_FILE", None)
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "harness", *args]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def test_the_wheel_carries_the_registry_and_the_app(installed, tmp_path):
    where = in_another_folder(installed, tmp_path, code=(
        "import harness, harness.leaderboard.formatting as f; from harness.registry import default_registry_path as p; "
        "print(harness.__file__); print(p()); print(len(f.protocol_markdown())); "
        "from harness.sources.hub import plismbench_rows; import numpy as np; "
        "ids = np.array([f's_0_{i // 126}_{i % 126}' for i in range(16278)]); print(len(plismbench_rows(ids, 8139, 's'))); "
        "from harness.install_hints import install_extra; print(install_extra('text')); "
        "from harness.models.model_spec import resolve_model; "
        "print(sorted(resolve_model(n).checkpoint.parent.name for n in ('synth-teacher-tissue', 'synth-teacher-nuclei'))); "
        "from importlib.resources import files; "
        "print(files('harness').joinpath('data/pathorob/tolkach_esca_reduced.csv').read_text().count(chr(10)))"))
    assert where.returncode == 0, where.stderr[-2000:]
    module, registry, about, plism, hint, teachers, tolkach = where.stdout.splitlines()
    assert tolkach == "9001"  # PathoROB's reduced tables (header + 9,000 tiles) are in the wheel
    assert teachers == "['synth-teacher-nuclei', 'synth-teacher-tissue']"  # the study's teachers ship in the wheel
    assert hint == "pip install 'pathology-harness[text]'"  # a wheel user is told the distribution name
    assert plism == "8139"  # the plismbench subsets are in the wheel
    assert module.startswith(str(installed)) and registry.startswith(str(installed))  # not this checkout
    assert Path(registry).read_text() == (ROOT / "tasks.yaml").read_text() and int(about) > 1000
    listed = in_another_folder(installed, tmp_path, "list")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "synth-tiles" in listed.stdout and "colour-stats" in listed.stdout


def test_the_wheel_installs_one_import_name(installed, tmp_path):
    """tasks/, distillers/ and leaderboard/ install under `harness`: a user's own tasks.py,
    distillers.py or leaderboard.py in the working folder neither breaks the harness nor is hidden by it."""
    packages = sorted(p.name for p in installed.iterdir() if p.name != "bin" and not p.name.endswith(".dist-info"))
    assert packages == ["harness"]  # no top-level tasks, distillers or leaderboard
    assert {"tasks", "distillers", "leaderboard"} <= {p.name for p in (installed / "harness").iterdir()}
    for name in ("tasks", "distillers", "leaderboard"):
        (tmp_path / f"{name}.py").write_text(f"NAME = 'my own {name}'\n")
    listed = in_another_folder(installed, tmp_path, "list")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "synth-tiles" in listed.stdout
    mine = in_another_folder(installed, tmp_path, code=(
        "import harness.cli, harness.tasks, harness.distillers, harness.leaderboard.formatting; "
        "import tasks, distillers, leaderboard; print(tasks.NAME, distillers.NAME, leaderboard.NAME, sep='|'); "
        "print(len(harness.tasks.FAMILIES))"))
    assert mine.returncode == 0, mine.stderr[-2000:]
    assert mine.stdout.splitlines()[0] == "my own tasks|my own distillers|my own leaderboard"
    assert int(mine.stdout.splitlines()[1]) >= 11


def test_the_installed_wheel_scores_a_synthetic_task(installed, tmp_path, suite_cache):
    """From the wheel: the instrument floor, and synth-reference, whose checkpoint ships inside the
    package, scored like a submitted checkpoint."""
    done = in_another_folder(installed, tmp_path, "run", "--model", "random-noise", "--model", "synth-reference",
                             "--tasks", "synth-grade", "--output", "out", "--cache-dir", str(suite_cache))
    assert done.returncode == 0, done.stderr[-3000:]
    noise = json.loads((tmp_path / "out" / "random-noise" / "synth-grade.json").read_text())
    assert noise["status"] == "ok" and 0 <= noise["main_score"]["value"] < 0.5
    reference = json.loads((tmp_path / "out" / "synth-reference" / "synth-grade.json").read_text())
    assert reference["status"] == "ok" and reference["main_score"]["value"] > 0.8  # chance: 1/3
    assert reference["model"]["weights"] == "checkpoint" and reference["model"]["n_parameters"] == 577_328
