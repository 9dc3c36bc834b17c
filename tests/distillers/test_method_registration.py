"""A distillation method of one's own: one class (its Params, data, heads and loss) and one
registration; `harness distill` then takes it by name, with its own keys, and writes a student.
Nothing else is edited."""

import json

import numpy as np
import pytest
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from harness.distillers import METHODS, DistillationMethod, register_method
from harness.distillers.training_items import TrainTargets, training_items


class MeanSquaredParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scale: float = Field(1.0, gt=0)


class MeanSquaredKD(DistillationMethod):
    """A linear head per teacher, trained by mean squared error against its standardised target."""

    name = "mean_squared_kd"
    Params = MeanSquaredParams
    teachers = "several"

    @classmethod
    def prepare(cls, run):
        return training_items(run)

    @classmethod
    def build(cls, run, prepared, keep):
        return cls([TrainTargets(t, keep) for t in prepared.targets], run.config.method_params.scale)

    def __init__(self, targets, scale):
        self.targets, self.scale = targets, scale

    def heads(self, student_dim):  # the fidelity measure reads heads["t<i>"]["<full dim>"]
        return nn.ModuleDict({f"t{i}": nn.ModuleDict({str(student_dim): nn.Linear(student_dim, t.dim)})
                              for i, t in enumerate(self.targets)})

    def loss(self, heads, summary, index, grid=None, codes=None):
        full = str(summary.shape[1])
        return self.scale * sum(torch.mean((heads[f"t{i}"][full](summary) - torch.from_numpy(t.standardised[index])) ** 2)
                                for i, t in enumerate(self.targets))


@pytest.fixture
def mean_squared_method():
    register_method(MeanSquaredKD)
    yield
    METHODS.pop("mean_squared_kd")


def test_a_registered_method_trains_a_student_with_its_own_settings(mean_squared_method, tmp_path,
                                                                    tiny_registry_file, capsys):
    from harness.cli import main

    out = tmp_path / "student"
    common = ["distill", "--include", str(tiny_registry_file), "--cache-dir", str(tmp_path / "cache"),
              "--device", "cpu", "--teacher", "synth-oracle-tissue", "--teacher", "synth-oracle-grade",
              "--set", "method=mean_squared_kd", "--set", "dataset=tiny-tiles", "--set", "student_input_size=32",
              "--set", "steps=4", "--set", "batch_size=8", "--set", "warmup_steps=1"]
    assert main([*common, "--set", "scale=0.5", "--output", str(out)]) == 0
    record = json.loads((out / "distill.json").read_text())
    assert record["method"] == "mean_squared_kd" and record["steps"] == 4
    assert record["config"]["params"] == {"scale": 0.5}
    assert set(record["fidelity"]) == {"synth-oracle-tissue", "synth-oracle-grade"}
    assert np.isfinite(record["loss_last"]) and (out / "model.safetensors").exists()

    capsys.readouterr()
    assert main([*common, "--set", "tau=2", "--output", str(tmp_path / "other")]) == 2  # a logit_kd key
    assert "key 'tau': a setting of logit_kd, not of mean_squared_kd" in capsys.readouterr().err
