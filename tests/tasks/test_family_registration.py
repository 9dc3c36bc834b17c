"""A family of one's own: one class and one registration, and its tasks validate, run, and carry
the metric descriptions it declares into the result, which the leaderboard then follows (here a
lower-is-better score, so the ranking turns around). Nothing else is edited."""

import json
from typing import ClassVar

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict

from harness.evaluation import Evaluation, MetricInfo, TaskData, TaskFamily, summarise
from harness.tasks import FAMILIES, register_family


class SpreadParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    split: str = "test"


class EmbeddingSpread(TaskFamily):
    """Mean distance of a split's embeddings from their centroid: lower is tighter."""

    name = "embedding_spread"
    title = "embedding spread"
    Params: ClassVar[type[BaseModel]] = SpreadParams

    @staticmethod
    def metrics(params: SpreadParams) -> dict[str, MetricInfo]:
        return {"spread": MetricInfo(higher_is_better=False, bounds=(0.0, None))}

    def evaluate(self, data: TaskData, params: SpreadParams) -> Evaluation:
        x = np.asarray(data.splits[params.split].embeddings, dtype=np.float64)
        spread = float(np.linalg.norm(x - x.mean(0), axis=1).mean())
        return Evaluation({"spread": summarise([spread], None)}, {params.split: len(x)}, [0],
                          details={"device": data.device})


@pytest.fixture
def spread_family():
    register_family(EmbeddingSpread)
    yield
    FAMILIES.pop("embedding_spread")


REGISTRY = """
tasks:
  toy-spread:
    family: embedding_spread
    dataset: tiny-tiles
    main_score: spread
"""


def test_a_registered_family_runs_and_its_metric_description_reaches_the_board(spread_family, tmp_path,
                                                                               tiny_registry_file):
    from harness.cli import main
    from harness.leaderboard.aggregate import build_leaderboard, load_results

    registry = tmp_path / "spread.yaml"
    registry.write_text(REGISTRY)
    out = tmp_path / "results"
    assert main(["run", "--model", "random-noise", "--model", "synth-oracle", "--tasks", "toy-spread",
                 "--include", str(tiny_registry_file), "--include", str(registry), "--output", str(out),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    noise = json.loads((out / "random-noise" / "toy-spread.json").read_text())
    assert noise["family_title"] == "embedding spread"
    assert noise["details"]["device"] == "cpu"  # a family is told where the run computes (--device auto, here)
    assert noise["metric_info"]["spread"] == {"higher_is_better": False, "bounds": [0.0, None], "group": "score"}
    board = build_leaderboard(*load_results(out))
    spreads = {m: board.score(m, "toy-spread") for m in board.models}
    assert spreads["random-noise"] > spreads["synth-oracle"]  # noise spreads wide; the oracle is a few bumps
    assert board.ranked_models()[0] == "synth-oracle"  # lower is better: the tighter one ranks first
    assert board.mean("synth-oracle") is None  # unbounded: ranked, never averaged


PLUGIN = '''
import numpy as np
from pydantic import BaseModel, ConfigDict

from harness.evaluation import Evaluation, MetricInfo, TaskFamily, summarise


class CentroidNormParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CentroidNorm(TaskFamily):
    name = "centroid_norm"
    title = "centroid norm"
    Params = CentroidNormParams

    @staticmethod
    def metrics(params):
        return {"norm": MetricInfo(bounds=(0.0, None))}

    def evaluate(self, data, params):
        x = np.asarray(data.splits["test"].embeddings, dtype=np.float64)
        return Evaluation({"norm": summarise([float(np.linalg.norm(x.mean(0)))], None)}, {"test": len(x)}, [0])
'''


def test_a_family_of_another_installed_package_reaches_the_command(tmp_path, tiny_registry_file):
    """Through the pathology_harness.families entry point, as `pip install` of a plug-in package
    would declare it: `harness run` in a fresh process sees the family without any edit here."""
    import os
    import subprocess
    import sys

    site = tmp_path / "site"
    (site / "toy_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "toy_plugin-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 0.1\n")
    (site / "toy_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[pathology_harness.families]\ncentroid_norm = toy_plugin_family:CentroidNorm\n")
    (site / "toy_plugin_family.py").write_text(PLUGIN)
    registry = tmp_path / "norm.yaml"
    registry.write_text("tasks:\n  toy-norm: {family: centroid_norm, dataset: tiny-tiles, main_score: norm}\n")
    out = tmp_path / "results"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--model", "synth-oracle", "--tasks", "toy-norm",
                           "--include", str(tiny_registry_file), "--include", str(registry), "--output", str(out),
                           "--cache-dir", str(tmp_path / "cache")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((out / "synth-oracle" / "toy-norm.json").read_text())
    assert result["family_title"] == "centroid norm" and result["main_score"]["value"] > 0


def test_a_plugin_that_fails_to_load_or_register_is_left_out_with_one_warning(tmp_path):
    """One broken package (written for another harness version, or taking a built-in family's
    name) stopped every command with its traceback; now the others run and it is named."""
    import os
    import subprocess
    import sys

    site = tmp_path / "site"
    info = site / "broken_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[pathology_harness.families]\nold = broken_plugin_old:Family\n"
                                           "taken = broken_plugin_taken:Retrieval\n")
    (site / "broken_plugin_old.py").write_text("from harness.evaluation import RemovedInAnOlderHarness\n")
    (site / "broken_plugin_taken.py").write_text(
        "from harness.evaluation import TaskFamily\n\nclass Retrieval(TaskFamily):\n    name = 'retrieval'\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "harness.cli", "list"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and "synth-tiles" in done.stdout, done.stderr[-2000:]
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: plug-in")]
    assert len(warnings) == 2 and all(w.endswith("; fix or uninstall broken-plugin") for w in warnings)
    assert warnings[0].startswith("warning: plug-in 'old' (broken_plugin_old:Family) of broken-plugin is left out: "
                                  "ImportError: cannot import name 'RemovedInAnOlderHarness' from 'harness.evaluation'")
    assert warnings[1].startswith("warning: plug-in 'taken' (broken_plugin_taken:Retrieval) of broken-plugin is left "
                                  "out: ValueError: family 'retrieval' is already registered")
