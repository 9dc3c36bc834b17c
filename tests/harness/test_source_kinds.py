"""A source kind of one's own: one module (its schema and its source) and one registration, and
`source: <kind>` datasets validate in a registry file and run end to end. Nothing else is edited."""

from typing import Literal

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict

from harness.errors import HarnessError
from harness.registry import DATASET_SCHEMAS
from harness.sources import register_source_kind
from harness.sources import _OPENERS  # only to undo the registration after the test
from harness.sources.base import Availability, TileSource


class StripesDataset(BaseModel):  # the toy kind's keys
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["stripes"]
    per_class: int = 6
    description: str = ""


class StripesSource(TileSource):
    """Two classes of 32 px tiles: horizontal or vertical stripes."""

    def availability(self) -> Availability:
        return Availability(ok=True)

    def fingerprint(self) -> str:
        return f"stripes-{self.spec.per_class}"

    def split_names(self) -> list[str]:
        return ["train", "test"]

    def class_names(self) -> list[str]:
        return ["horizontal", "vertical"]

    def labels(self, split: str) -> np.ndarray:
        return np.arange(2 * self.spec.per_class) % 2

    def images(self, split: str) -> list[np.ndarray]:
        stripes = ((np.arange(32) // 4) % 2 * 200 + 30).astype(np.uint8)
        horizontal = np.repeat(np.repeat(stripes[:, None], 32, 1)[..., None], 3, 2)
        return [horizontal if label == 0 else horizontal.transpose(1, 0, 2) for label in self.labels(split)]


@pytest.fixture
def stripes_kind():
    register_source_kind("stripes", StripesDataset, lambda name, spec, context, datasets: StripesSource(name, spec, context))
    yield
    DATASET_SCHEMAS.pop("stripes"), _OPENERS.pop("stripes")


REGISTRY = """
datasets:
  toy-stripes: {source: stripes, per_class: 5}
tasks:
  toy-stripes-retrieval:
    family: retrieval
    dataset: toy-stripes
    main_score: acc@1
    params: {ks: [1], bootstrap_resamples: 20}
"""


def test_a_registered_source_kind_validates_and_runs(stripes_kind, tmp_path):
    import json

    from harness.cli import main

    registry = tmp_path / "stripes.yaml"
    registry.write_text(REGISTRY)
    out = tmp_path / "results"
    assert main(["run", "--model", "timm:resnet18", "--random-init", "--tasks", "toy-stripes-retrieval",
                 "--include", str(registry), "--output", str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    result = json.loads((out / "timm--resnet18-random-init" / "toy-stripes-retrieval.json").read_text())
    assert result["status"] == "ok" and result["dataset"]["source"] == "stripes"
    assert result["main_score"]["value"] == 1.0  # each stripe's nearest neighbour is a stripe of its orientation


def test_an_unregistered_source_is_named_with_the_registered_ones(tmp_path):
    from harness.registry import load_registry

    path = tmp_path / "bad.yaml"
    path.write_text("datasets:\n  d: {source: stripes}\n")
    with pytest.raises(HarnessError, match=r"dataset 'd': key 'source': unknown source 'stripes' \(one of: synth, hf"):
        load_registry([path])
