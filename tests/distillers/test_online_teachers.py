"""Online teachers (`teacher_forward: online`): the teachers embed the very view the student is
trained on, the patch-token term is added to the summary loss as the formula says, and a run
with a real network teacher writes a student; instrument teachers are refused."""

import json

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from harness.distillers.config import DistillConfig
from harness.distillers.losses import cosine_distance, resize_tokens
from harness.distillers.feature_kd import FeatureKD
from harness.distillers.online_teachers import TeacherView
from harness.distillers.training_loop import model_input, train

CONFIG = dict(method="feature_kd", teachers=[{"model": "timm:vit_tiny_patch16_224", "random_init": True}],
              student="vit_tiny_patch16_224", student_input_size=32, dataset="tiny-tiles", teacher_forward="online",
              fit_tiles=16, steps=3, batch_size=4, warmup_steps=1, checkpoint_every=10, patch_weight=0.5)


class Target:
    name, weight, dim = "teacher", 1.0, 3


class RecordingTeacher:
    """Stands in for OnlineTeachers: records each view and answers with fixed-size targets."""

    patch_dims = [3]

    def __init__(self):
        self.views = []

    def __call__(self, tiles):
        self.views.append(tiles.clone())
        b = len(tiles)
        return [TeacherView(torch.ones(b, 3), torch.ones(b, 16, 3))]


def test_teachers_see_the_view_the_student_is_trained_on(tmp_path, monkeypatch):
    import harness.distillers.training_loop as loop

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(12, 32, 32, 3), dtype=np.uint8)
    config = DistillConfig(**CONFIG)
    teacher = RecordingTeacher()
    seen = []  # the student's input at every training step

    def build_watched_student(*args):
        student = build(*args)
        student.backbone.patch_embed.register_forward_hook(lambda m, i, o: seen.append(i[0].detach().clone()))
        return student

    build = loop.build_student
    monkeypatch.setattr(loop, "build_student", build_watched_student)
    outcome = train(config, images, FeatureKD(config, [Target()], teacher), tmp_path / "run")
    assert outcome["steps"] == 3 and len(teacher.views) == 3
    training_inputs = seen[1:]  # seen[0] is the probe that sizes the student
    assert len(training_inputs) == 3
    for step, (view, student_input) in enumerate(zip(teacher.views, training_inputs)):
        index, codes = loop.batch_of(config.seed, step, len(images), config.batch_size)
        torch.testing.assert_close(view, loop.oriented_tiles(images, index, codes))  # augmented, as drawn
        torch.testing.assert_close(student_input, model_input(view, 32))  # the same view, normalised
    assert any(not torch.equal(v, loop.oriented_tiles(images, loop.batch_of(0, s, 12, 4)[0], None))
               for s, v in enumerate(teacher.views))  # augmentation did turn the views


def test_online_loss_adds_the_patch_term_to_the_summary_term():
    rng = np.random.default_rng(1)
    config = DistillConfig(**CONFIG)
    method = FeatureKD(config, [Target()], RecordingTeacher())
    summary_t = torch.tensor(rng.normal(size=(2, 3)), dtype=torch.float32)
    patches_t = torch.tensor(rng.normal(size=(2, 16, 3)), dtype=torch.float32)  # a 4 x 4 teacher grid
    method._views = [TeacherView(summary_t, patches_t)]
    heads = nn.ModuleDict({"t0": nn.ModuleDict({"3": nn.Identity()}), "p0": nn.Identity()})
    summary = torch.tensor(rng.normal(size=(2, 3)), dtype=torch.float32)
    grid = torch.tensor(rng.normal(size=(2, 3, 2, 2)), dtype=torch.float32)  # the student's 2 x 2 token map
    loss = method.loss(heads, summary, np.array([0, 1]), grid=grid)
    student_tokens = grid.flatten(2).transpose(1, 2)
    teacher_tokens = resize_tokens(patches_t, 2)
    assert teacher_tokens.shape == (2, 4, 3)
    patch = 0.9 * cosine_distance(student_tokens, teacher_tokens) + 0.1 * torch.nn.functional.smooth_l1_loss(
        student_tokens, teacher_tokens)
    assert float(loss) == pytest.approx(float(cosine_distance(summary, summary_t) + 0.5 * patch), rel=1e-5)


def test_an_online_run_with_a_network_teacher_writes_a_student(tmp_path, tiny_registry_file):
    from harness.cli import main

    config = tmp_path / "online.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "name": "online-student"}))
    common = ["--include", str(tiny_registry_file), "--cache-dir", str(tmp_path / "cache"), "--device", "cpu"]
    assert main(["distill", "--config", str(config), "--output", str(tmp_path / "student"), *common]) == 0
    record = json.loads((tmp_path / "student" / "distill.json").read_text())
    assert record["distillation_tiles"]["teacher_forward"] == "online" and record["steps"] == 3
    assert record["teachers"][0]["n_parameters"] > 5_000_000 and record["teachers"][0]["dim"] == 192
    assert 0 <= record["fidelity"]["timm:vit_tiny_patch16_224"]["one_minus_mean_cosine"] <= 2
    assert record["loss_first"] > 1.0  # summary (about 1) plus the patch term
    for teachers in ([{"model": "synth-oracle-tissue"}], ):
        config.write_text(yaml.safe_dump({**CONFIG, "teachers": teachers}))
        assert main(["distill", "--config", str(config), "--output", str(tmp_path / "bad"), *common]) == 2
    config.write_text(yaml.safe_dump({**CONFIG, "method": "logit_kd", "label_dataset": "tiny-tiles"}))
    assert main(["distill", "--config", str(config), "--output", str(tmp_path / "bad2"), *common]) == 2
