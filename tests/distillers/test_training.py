"""The shared training loop: a resumed run equals an uninterrupted one, two torchrun ranks end
with identical weights, and the written student loads through `harness run` and the submission
queue."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.distillers.config import DistillConfig
from harness.distillers.run import distill
from harness.tile_embedding import ExtractOptions
from harness.registry import load_registry
from harness.sources import DataContext
from harness.tasks import FAMILIES

HARNESS = str(Path(sys.executable).parent / "harness")
CONFIG = dict(method="multi_teacher", teachers=[{"model": "synth-oracle-tissue"},
                                                 {"model": "synth-oracle-grade", "weight": 0.5}],
              student="vit_tiny_patch16_224", student_input_size=32, dataset="tiny-tiles", steps=8, batch_size=8,
              warmup_steps=2, checkpoint_every=2, matryoshka_dims=[32, 64], augment=True)


def run(tmp_path, registry_file, out, stop_after=None, **overrides):
    registry = load_registry([registry_file], FAMILIES)
    context = DataContext(cache_dir=tmp_path / "cache", data_root=tmp_path / "data")
    settings = {key: value for key, value in {**CONFIG, **overrides}.items() if value is not None}  # None: drop it
    return distill(DistillConfig(**settings), out, registry, context, ExtractOptions(num_workers=0),
                   stop_after=stop_after)


def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, tiny_registry_file, capsys):
    whole = run(tmp_path, tiny_registry_file, tmp_path / "whole")
    first = run(tmp_path, tiny_registry_file, tmp_path / "resumed", stop_after=3)  # as if killed after step 3
    assert first["steps"] == 3 and not (tmp_path / "resumed" / "model.safetensors").exists()
    capsys.readouterr()
    second = run(tmp_path, tiny_registry_file, tmp_path / "resumed")
    assert second["steps"] == 8
    said = " ".join(capsys.readouterr().err.split())  # the resumed run says where it picks up
    assert f"resuming from {tmp_path / 'resumed' / 'checkpoint' / 'state.pt'}: step 3 of 8" in said
    assert second["weights_digest"] == whole["weights_digest"]
    assert second["loss_last"] == pytest.approx(whole["loss_last"], rel=1e-6)
    assert set(whole["fidelity"]) == {"synth-oracle-tissue", "synth-oracle-grade"}
    assert [point["step"] for point in whole["loss_curve"]] == [2, 4, 6, 8]  # checkpoint_every 2
    assert whole["loss_curve"] == second["loss_curve"]  # the resumed run kept the first run's losses
    # the objective on the held-out items at each checkpoint, kept across the interruption (none
    # measured where it stopped)
    assert [point["step"] for point in whole["held_out_curve"]] == [2, 4, 6, 8]
    assert [p["loss"] for p in second["held_out_curve"]] == pytest.approx([p["loss"] for p in whole["held_out_curve"]],
                                                                          rel=1e-5)
    assert all(0 < point["loss"] < 2 for point in whole["held_out_curve"])  # 1 - cos, averaged


def test_the_held_out_curve_ends_at_the_final_students_held_out_distance(tmp_path, tiny_registry_file):
    """One teacher, no nested dims: the objective is 1 - cos of the adaptor's output and the target,
    which fidelity measures on the same held-out items from the written-out student (numpy)."""
    record = run(tmp_path, tiny_registry_file, tmp_path / "one", method="feature_kd",
                 teachers=[{"model": "synth-oracle-tissue"}], matryoshka_dims=[])
    final = record["held_out_curve"][-1]
    assert final["step"] == 8
    assert final["loss"] == pytest.approx(record["fidelity"]["synth-oracle-tissue"]["one_minus_mean_cosine"], abs=1e-5)
    assert record["held_out_curve"][0]["loss"] != pytest.approx(final["loss"], abs=1e-4)  # it was measured each time


def test_the_student_loads_and_is_scored_through_harness_run(tmp_path, tiny_registry_file):
    from harness.cli import main

    run(tmp_path, tiny_registry_file, tmp_path / "student", name="lab/tiny-student")
    record = json.loads((tmp_path / "student" / "distill.json").read_text())
    assert record["matryoshka_dims"] == [32, 64] and record["embed_dim"] == 192
    assert [t["model"] for t in record["teachers"]] == ["synth-oracle-tissue", "synth-oracle-grade"]
    out = tmp_path / "results"
    assert main(["run", "--model", str(tmp_path / "student"), "--tasks", "tiny-tiles", "--include",
                 str(tiny_registry_file), "--output", str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    result = json.loads((out / "lab--tiny-student" / "tiny-tiles.json").read_text())
    assert result["status"] == "ok" and result["model"]["weights"] == "checkpoint"
    assert result["model"]["embed_dim"] == 192
    # its lineage travels with it: the card names its teachers and method, the result records them,
    # and the board's row shows them
    import yaml

    card = yaml.safe_load((tmp_path / "student" / "card.yaml").read_text())
    assert card["teachers"] == ["synth-oracle-tissue", "synth-oracle-grade"] and card["distillation"] == "multi_teacher"
    assert result["model"]["teachers"] == card["teachers"]
    from harness.leaderboard.aggregate import build_leaderboard, load_results

    [row] = build_leaderboard(*load_results(out)).overview()
    assert row["teachers"] == "synth-oracle-tissue, synth-oracle-grade"
    # a model author submits the student directory as it is; the queue scores it like `harness run`
    common = ["--include", str(tiny_registry_file), "--cache-dir", str(tmp_path / "cache")]
    requests, queued = tmp_path / "requests", tmp_path / "queued"
    assert main(["submit", str(tmp_path / "student"), "--card", str(tmp_path / "student" / "card.yaml"),
                 "--tasks", "tiny-tiles", "--requests", str(requests), "--include", str(tiny_registry_file)]) == 0
    assert main(["queue", "run", "--requests", str(requests), "--output", str(queued), *common]) == 0
    [request] = [json.loads(p.read_text()) for p in (requests / "requests").glob("*.json")]
    assert request["status"] == "FINISHED"
    scored = json.loads((queued / "lab--tiny-student" / "tiny-tiles.json").read_text())
    assert scored["model"]["weights_sha256"] == result["model"]["weights_sha256"]
    assert scored["main_score"] == result["main_score"]


def test_two_torchrun_ranks_end_with_identical_weights(tmp_path, tiny_registry_file):
    config = tmp_path / "distill.yaml"
    import yaml

    config.write_text(yaml.safe_dump(CONFIG))
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "harness", "distill", "--config", str(config), "--output", str(tmp_path / "ddp"),
                           "--include", str(tiny_registry_file), "--cache-dir", str(tmp_path / "cache"),
                           "--device", "cpu"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    digests = [(tmp_path / "ddp" / "checkpoint" / f"weights-rank{r}.sha256").read_text() for r in (0, 1)]
    assert digests[0] == digests[1]
    assert (tmp_path / "ddp" / "model.safetensors").exists()


def test_logit_kd_from_an_ensemble_of_task_heads(tmp_path, tiny_registry_file):
    from harness.distillers.logit_kd import teacher_probabilities

    record = run(tmp_path, tiny_registry_file, tmp_path / "logit", method="logit_kd", label_dataset="tiny-tiles",
                 matryoshka_dims=None, steps=4)  # not a setting of logit_kd
    assert record["method"] == "logit_kd" and record["steps"] == 4 and "fidelity" not in record
    assert (tmp_path / "logit" / "model.safetensors").exists()

    class Teacher:  # the ensemble is the mean of the teachers' tempered softmaxes
        def __init__(self, raw):
            self.raw = raw

    import numpy as np
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 4)), np.arange(60) % 3
    x[np.arange(60), y] += 3
    shared = {key: value for key, value in CONFIG.items() if key != "matryoshka_dims"}  # not a logit_kd setting
    config = DistillConfig(**{**shared, "method": "logit_kd", "tau": 2.0})
    one = teacher_probabilities(config, [Teacher(x)], [(x, y)], 3)
    two = teacher_probabilities(config, [Teacher(x), Teacher(x[:, ::-1].copy())], [(x, y), (x[:, ::-1].copy(), y)], 3)
    np.testing.assert_allclose(one.sum(1), 1, rtol=1e-5)
    assert (one.argmax(1) == y).mean() > 0.9 and two.shape == (60, 3)


def test_distill_score_writes_the_teacher_student_report(tmp_path, tiny_registry_file, capsys):
    import yaml

    from harness.cli import main

    config = tmp_path / "distill.yaml"
    # distilled on the training split of the task's dataset: the test split it reports is held out
    # (with every split, the task would be marked on_training_images and left out of the median)
    config.write_text(yaml.safe_dump({**CONFIG, "method": "feature_kd", "teachers": [{"model": "synth-oracle-tissue"}],
                                      "steps": 4, "name": "tiny-student", "splits": ["train"]}))
    assert main(["distill", "--config", str(config), "--output", str(tmp_path / "student"), "--score",
                 "tiny-tiles", "--results", str(tmp_path / "results"), "--include", str(tiny_registry_file),
                 "--cache-dir", str(tmp_path / "cache"), "--device", "cpu"]) == 0
    report = json.loads((tmp_path / "results" / "tiny-student" / "distillation.json").read_text())
    row = report["teachers"]["synth-oracle-tissue"]
    task = row["tasks"]["tiny-tiles"]
    assert task["retention"] == pytest.approx(100 * task["student"] / task["teacher"])
    assert row["median_retention"] == pytest.approx(task["retention"])
    assert "on_training_images" not in report and "on_training_images" not in task
    # scored as `harness run` scores: the distillation's device and precision, not the CPU in fp32
    from harness.tile_embedding import default_extract_options

    student_result = json.loads((tmp_path / "results" / "tiny-student" / "tiny-tiles.json").read_text())
    assert student_result["timings"]["precision"] == default_extract_options("cpu").precision
    assert row["parameters"]["teacher"] == 0 and row["items_per_s"]["teacher"] is None  # instruments have no speed
    assert "synth-oracle-tissue" in report["fidelity"]
    captured = capsys.readouterr()
    printed = captured.out  # the report's numbers as a table, rounded
    assert "against its teachers" in printed and f"{row['median_retention']:.1f}" in printed
    assert "(feature_kd): 4 steps ..." in captured.err  # the log counts a training loop's steps, not "items"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**CONFIG, "teachers": [{"model": "timm:vit_tiny_patch16_224", "random_init": True}],
                                   "method": "feature_kd"}))
    assert main(["distill", "--config", str(bad), "--output", str(tmp_path / "x"), "--score", "tiny-tiles",
                 "--include", str(tiny_registry_file), "--cache-dir", str(tmp_path / "cache")]) == 2
    assert not (tmp_path / "x").exists()  # refused before any training
    assert main(["distill", "--config", str(config), "--output", str(tmp_path / "y"), "--score", "tiny-tilez",
                 "--include", str(tiny_registry_file), "--cache-dir", str(tmp_path / "cache")]) == 2
    assert not (tmp_path / "y").exists()  # an unknown task too


def test_settings_come_from_the_file_and_flags_override_them(tmp_path):
    from harness.distillers.config import read_config
    from harness.errors import HarnessError

    path = tmp_path / "d.yaml"
    path.write_text("method: feature_kd\nteachers: [{model: synth-oracle}]\nsteps: 50\n")
    assert read_config(path).steps == 50
    config = read_config(path, ["synth-oracle-tissue", "synth-oracle-grade"], ["steps=7", "method=multi_teacher",
                                                                            "matryoshka_dims=[16, 32]"])
    assert (config.steps, config.method, config.method_params.matryoshka_dims) == (7, "multi_teacher", [16, 32])
    assert config.params == {"matryoshka_dims": [16, 32]}  # a method's key written at the top level moves into params
    assert [t.model for t in config.teachers] == ["synth-oracle-tissue", "synth-oracle-grade"]
    assert read_config(None, ["synth-oracle"], ["student_input_size=64"]).student_input_size == 64
    for teachers, settings, message in [(None, ["stepz=3"], "flags: key 'stepz'"), (None, ["steps"], "KEY=VALUE"),
                                        (["x"], ["steps=many"], "key 'steps'")]:
        with pytest.raises(HarnessError, match=message):
            read_config(path if teachers is None else None, teachers, settings)
    path.write_text("steps: [unclosed\n")
    with pytest.raises(HarnessError, match="malformed YAML at line 2"):
        read_config(path)


def test_settings_that_cannot_work_are_refused_in_one_line_before_training(tmp_path, tiny_registry_file, capsys):
    from harness.cli import main

    common = ["--include", str(tiny_registry_file), "--cache-dir", str(tmp_path / "cache"), "--device", "cpu",
              "--teacher", "synth-oracle-tissue", "--set", "dataset=tiny-tiles", "--set", "student_input_size=32",
              "--set", "steps=2", "--set", "batch_size=4"]
    for settings, message in [
        (["student=not_a_net"], "student 'not_a_net' is not a timm architecture"),
        (["method=logit_kd", "label_dataset=nope"], "label_dataset 'nope' is not in the registry"),
        (["method=logit_kd", "matryoshka_dims=[16]"], "key 'matryoshka_dims': a setting of feature_kd and multi_teacher and cross_magnification, not of logit_kd"),
        (["splits=[train,tset]"], r"dataset 'tiny-tiles' has no split tset \(its splits: train, val, test\)"),
        (["matryoshka_dims=[64,500]"], r"matryoshka_dims \[500\]: larger than the vit_tiny_patch16_224 student's "
                                       "192-d embedding"),
        (["student=convnext_atto", "student_kwargs={depths: [1, 1], dimz: [8]}"],
         r"student convnext_atto with student_kwargs .*timm cannot build it \(TypeError: .*'dimz'"),
        (["student_kwargs={depths: {a: 1}}"], "key 'student_kwargs.depths"),
        (["student_kwargs={depth: -1}"], r"timm cannot build it \(RuntimeError: number of steps must be non-negative\)"),
        # sized on the meta device: 129.6B parameters were allocated (and a 100,000 px input's position table)
        (["student_kwargs={embed_dim: 30000, num_heads: 3}"], r"129,6[0-9,]{10} parameters, more than the "
                                                              "2,500,000,000 a scored model may have"),
        (["student_input_size=100000"], "key 'student_input_size': Input should be less than or equal to 1024"),
        (["steps=0"], "key 'steps': Input should be greater than or equal to 1"),
        (["alpha=1.5"], "key 'alpha'"),
        (["jitter={stane: 0.2}"], "key 'jitter.stane': unknown key"),
        (["jitter={stain: 2}"], "key 'jitter.stain': Input should be less than or equal to 0.5"),
        (["method=nope"], r"key 'method': unknown method 'nope' \(one of: feature_kd, multi_teacher"),
        (["lr=.inf"], "key 'lr': Input should be a finite number"),  # trained to NaN and wrote the student
        (["weight_decay=.inf"], "key 'weight_decay': Input should be a finite number"),
    ]:
        out = tmp_path / "student"
        code = main(["distill", *common, *[f for s in settings for f in ("--set", s)], "--output", str(out)])
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert code == 2 and len(errors) == 1 and re.search(message, errors[0]), (settings, errors)
        assert not (out / "model.safetensors").exists()


def test_a_teacher_whose_weights_cannot_be_fetched_is_one_line_in_distills_words(tmp_path, tiny_registry_file, capsys):
    """Offline, a timm teacher's weights are not there: the line offered `--random-init`, a flag of
    `harness run` that `harness distill` does not take; it names a teacher's `random_init` too."""
    from harness.cli import main

    code = main(["distill", "--teacher", "timm:vit_tiny_patch16_224", "--set", "dataset=tiny-tiles", "--set", "steps=1",
                 "--include", str(tiny_registry_file), "--cache-dir", str(tmp_path / "cache"), "--device", "cpu",
                 "--output", str(tmp_path / "student")])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1
    assert "model 'timm:vit_tiny_patch16_224'" in errors[0] and "a teacher's random_init: true" in errors[0]


def test_a_loss_that_becomes_nan_stops_the_run_and_writes_no_student(tmp_path, tiny_registry_file):
    from harness.errors import HarnessError

    out = tmp_path / "student"
    with pytest.raises(HarnessError, match=r"the distillation loss is nan at step \d+ \(lr 1e\+30\): the student is "
                                           "not written; lower lr"):
        run(tmp_path, tiny_registry_file, out, lr=1e30)
    assert not (out / "model.safetensors").exists() and not (out / "checkpoint").exists()


def test_a_batch_larger_than_the_data_is_the_data_once_per_step():
    from harness.distillers.training_loop import batch_of

    index, codes = batch_of(0, 3, n_items=10, batch_size=10**8)  # drew 10**8 codes per step before (800 MB)
    assert sorted(index) == list(range(10)) and codes.shape == (10,)
    small, small_codes = batch_of(0, 3, n_items=10, batch_size=4)
    assert len(small) == 4 and small_codes.shape == (4,)


def test_a_checkpoint_of_other_settings_is_refused_not_continued(tmp_path, tiny_registry_file):
    from harness.errors import HarnessError

    out = tmp_path / "student"
    run(tmp_path, tiny_registry_file, out, stop_after=2)
    state = out / "checkpoint" / "state.pt"
    before = state.read_bytes()
    with pytest.raises(HarnessError, match=r"another distillation \(different lr, steps\)"):
        run(tmp_path, tiny_registry_file, out, lr=1e-3, steps=12)
    assert state.read_bytes() == before  # nothing overwritten
    assert run(tmp_path, tiny_registry_file, out, checkpoint_every=4)["steps"] == 8  # how often it saves may change
    state.write_bytes(before[: len(before) // 2])  # a truncated checkpoint
    with pytest.raises(HarnessError, match="cannot resume from this checkpoint"):
        run(tmp_path, tiny_registry_file, out)


def test_a_checkpoint_of_teachers_that_changed_under_their_names_is_refused(tmp_path, tiny_registry_file, monkeypatch):
    """The settings name the teachers; their weights can change under the same name (a checkpoint
    trained again at its path, a new instrument version). Resuming then trained on with another
    teacher's targets, or, where a teacher's width changed, stopped on a RuntimeError traceback
    (seen when synth-oracle-tissue went from 6 to 96 dims). Now the checkpoint keeps each teacher's
    targets for its first items and a rerun whose teachers give others is refused in one line."""
    import numpy as np

    from harness.errors import HarnessError
    from harness.models import instruments

    out = tmp_path / "student"
    run(tmp_path, tiny_registry_file, out, stop_after=2)
    state = out / "checkpoint" / "state.pt"
    assert run(tmp_path, tiny_registry_file, out, stop_after=2)["steps"] == 4  # the same teachers resume
    before = state.read_bytes()
    embed = instruments.PartialOracle.embed
    monkeypatch.setitem(instruments.INSTRUMENT_VERSIONS, "synth-oracle-tissue", "retrained")  # embedded again
    monkeypatch.setattr(instruments.PartialOracle, "embed", lambda self, *a, **k: -embed(self, *a, **k))
    with pytest.raises(HarnessError, match=r"another distillation \(teacher synth-oracle-tissue's targets for the "
                                           r"first \d+ items are not the checkpoint's \(mean cosine -1.000\)"):
        run(tmp_path, tiny_registry_file, out)
    assert state.read_bytes() == before  # nothing overwritten
    monkeypatch.setitem(instruments.INSTRUMENT_VERSIONS, "synth-oracle-tissue", "wider")
    monkeypatch.setattr(instruments.PartialOracle, "embed", lambda self, *a, **k: np.tile(embed(self, *a, **k), (1, 2)))
    with pytest.raises(HarnessError, match="teacher synth-oracle-tissue gives 192 dims, the checkpoint's 96"):
        run(tmp_path, tiny_registry_file, out)
    import torch

    kept = torch.load(state, weights_only=True)
    for damaged in ({"0:synth-oracle-tissue": torch.zeros(5)}, "not a table", {"0:x": torch.zeros(2, 2, dtype=torch.long)}):
        torch.save({**kept, "teacher_rows": damaged}, state)  # a hand-edited checkpoint: one line, not a traceback
        with pytest.raises(HarnessError, match="cannot resume from this checkpoint .its teachers' targets are not"):
            run(tmp_path, tiny_registry_file, out)


def test_a_student_declares_what_its_teachers_and_its_images_came_from():
    """The student's card: the distillation images' collections plus every teacher's declared
    training data; unknown (nothing declared) as soon as one teacher's is unknown."""
    from harness.distillers.config import read_config
    from harness.distillers.run import student_training_data
    from harness.registry import load_registry

    registry = load_registry()
    data = lambda *teachers: student_training_data(  # noqa: E731
        read_config(None, list(teachers), ["dataset=synth-distill-tiles"]), registry).get("training_data")
    assert data("synth-oracle") == ["synthetic"]  # an instrument learned from nothing
    assert data("uni") == ["BWH", "GTEx", "MGH", "synthetic"]
    assert data("uni", "midnight") == ["BWH", "GTEx", "MGH", "TCGA", "synthetic"]
    assert data("uni", "uni2-h") is None  # UNI2-h's sources are unknown, so the student's are


def test_the_readmes_distillation_configs_are_valid_and_the_study_s_student_is_the_studys(tmp_path):
    """Every `distill.yaml` the README shows (a yaml block with a `method`) is read as `harness
    distill --config` reads it, names registered data, and the one the README calls the study's
    multi-teacher student is what benchmarks/distill_retention.py trains."""
    import yaml

    from harness.distillers.config import read_config
    from tests.support.benchmark_scripts import load_benchmark

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "method:" in b]
    assert len(blocks) >= 2
    registry = load_registry(families=FAMILIES)
    configs = []
    for k, block in enumerate(blocks):
        path = tmp_path / f"distill-{k}.yaml"
        path.write_text(re.sub(r"^  ", "", block, flags=re.M))  # a block indented under a list item
        config = read_config(path)
        assert config.dataset in registry.datasets, (config.dataset, block)
        configs.append((config, yaml.safe_load(path.read_text())))
    study = load_benchmark("distill_retention")
    [(multi, raw)] = [(c, r) for c, r in configs if c.method == "multi_teacher"]
    assert [t.model for t in multi.teachers] == list(study.TEACHERS.values())
    assert (raw["student"], raw["student_kwargs"], raw["student_input_size"]) == (
        study.STUDENT, study.STUDENT_KWARGS, study.STUDENT_INPUT)
    assert multi.method_params.matryoshka_dims == study.MATRYOSHKA and multi.dataset == study.Study.dataset
    assert (multi.steps, multi.lr) == (1600, study.Study.lr)


def test_a_second_distill_into_the_same_folder_is_refused_while_the_first_runs(tmp_path):
    """Both resumed from and overwrote one checkpoint, and the folder could end with one run's weights
    beside the other's card; a run refused before training leaves no folder behind."""
    from filelock import FileLock

    from harness.cli import main

    out = tmp_path / "student"
    (out / "checkpoint").mkdir(parents=True)
    with FileLock(str(out / "checkpoint" / "lock")):  # as the first run holds it
        code = main(["distill", "--teacher", "synth-oracle-tissue", "--set", "steps=2", "--output", str(out),
                     "--cache-dir", str(tmp_path / "cache")])
    assert code == 2 and not (out / "model.safetensors").exists()
    fresh = tmp_path / "refused"
    assert main(["distill", "--teacher", "synth-oracle-tissue", "--set", "dataset=nope", "--output", str(fresh),
                 "--cache-dir", str(tmp_path / "cache")]) == 2
    assert not fresh.exists()
