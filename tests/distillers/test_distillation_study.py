"""The distillation study (benchmarks/distill_retention.py): its teachers and students are the sizes
the claims are about, its arithmetic is what its docstring says, and it runs end to end, resumes
and prints a verdict per claim at toy size (the real study takes most of an hour: not a test)."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
from scipy import stats

from tests.support.benchmark_scripts import load_benchmark
from tests.support.registries import TINY_REGISTRY


def load_study():
    return load_benchmark("distill_retention")


study = load_study()


def test_students_are_under_a_tenth_of_each_teacher():
    counts = study.parameter_counts()
    assert set(counts) == {"synth-teacher-tissue", "synth-teacher-nuclei", "student"}
    for teacher in study.TEACHERS.values():
        assert counts[teacher] >= 10 * counts["student"], (teacher, counts)
    assert 50_000 < counts["student"] < 150_000  # the 92k-parameter ConvNeXt the docstring names


def test_the_teachers_know_what_they_were_trained_on():
    """The shipped cards say what each teacher is (and their notes, what it reached held out)."""
    from harness.models.model_spec import resolve_model

    tissue, nuclei = resolve_model("synth-teacher-tissue").card, resolve_model("synth-teacher-nuclei").card
    assert tissue.input_size == 112 and nuclei.input_size == 224
    assert "'tissue'" in tissue.notes and "'grade'" in nuclei.notes and "'mitosis'" in nuclei.notes
    assert "'grade'" not in tissue.notes and "'tissue'" not in nuclei.notes


def test_retention_and_informed_tasks():
    noise = {"a": 0.2, "b": 0.5, "c": 0.3}
    oracle = {"a": 1.0, "b": 1.0, "c": 0.9}
    teacher = {"a": 0.9, "b": 0.55, "c": 0.6}  # closes 87.5%, 10% and 50% of the gap
    assert study.informed(teacher, noise, oracle, ["a", "b", "c"]) == ["a", "c"]
    student = {"a": 0.55, "c": 0.6, "b": 0.9}
    assert study.retention(student, teacher, noise, ["a", "c"]) == pytest.approx({"a": 50.0, "c": 100.0})
    assert study.median(study.retention(student, teacher, noise, ["a", "c"])) == pytest.approx(75.0)


def test_t_interval_is_scipys_and_verdicts_read_it():
    values = [97.0, 98.0, 97.5]
    interval = study.t_interval(values)
    low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert (interval.low, interval.high) == pytest.approx((low, high))
    assert interval.low > 95 and study.verdict(interval, 95.0) == "holds"
    wide = study.t_interval([90.0, 99.0, 100.0])
    assert wide.mean >= 95 and wide.low < 95 and study.verdict(wide, 95.0).startswith("not shown")
    assert study.verdict(study.t_interval([80.0, 85.0, 90.0]), 95.0) == "does not hold"
    assert study.comparison_verdict(study.t_interval([2.0, 3.0, 2.5])) == "holds"
    assert study.comparison_verdict(study.t_interval([-1.0, 5.0, 2.0])).startswith("not shown")
    assert study.comparison_verdict(study.t_interval([-1.0, -2.0, 0.5])) == "does not hold"


TOY_REGISTRY = TINY_REGISTRY.replace("suites:", """  toy-plism:
    family: stain_robustness
    dataset: toy-plism
    main_score: plism_score
    params: {cross_domain: false}
suites:""").replace("datasets:", """datasets:
  toy-distill:
    source: synth
    generator: tiles
    params: {tile_size: 64, per_class: {train: 3}, tumour_weight: 2, seed: 7}
  toy-plism:
    source: synth
    generator: plism
    params: {tile_size: 64, n_tiles: 60, stainings: [standard, faded], scanners: [reference, soft-warm], seed: 0}""")


def test_the_study_runs_resumes_and_gives_a_verdict_per_claim(tmp_path, capsys, monkeypatch):
    registry = tmp_path / "toy.yaml"
    registry.write_text(TOY_REGISTRY)
    args = ["distill_retention.py", "--out", str(tmp_path / "study"), "--seeds", "0", "1", "--steps", "4",
            "--tasks", "tiny-tiles,tiny-retrieval,toy-plism", "--robustness-task", "toy-plism",
            "--dataset", "toy-distill", "--include", str(registry), "--cache-dir", str(tmp_path / "cache")]
    monkeypatch.setattr(sys, "argv", args)
    study.main()
    printed = capsys.readouterr().out
    verdicts = json.loads((tmp_path / "study" / "verdicts.json").read_text())
    assert set(verdicts["verdicts"]) == {"compression", "multi_teacher", "matryoshka", "robustness"}
    for claim in ("compression", "multi-teacher", "Matryoshka", "robustness"):
        assert len([line for line in printed.splitlines() if line.startswith(f"VERDICT {claim}:")]) == 1, claim
    for arm in study.ARMS:
        for seed in (0, 1):
            folder = tmp_path / "study" / "students" / f"{arm}-s{seed}"
            card = (folder / "card.yaml").read_text()
            assert "convnext_atto" in card and "dims:" in card  # the narrow student, recorded in its card
            assert (tmp_path / "study" / "results" / f"{arm}-s{seed}-d8" / "tiny-tiles.json").exists() == (arm == "multi")
            record = json.loads((folder / "distill.json").read_text())
            assert record["matryoshka_dims"] == study.MATRYOSHKA and record["embed_dim"] == 64
            jitter = record["config"]["jitter"]  # only the jitter arm's student saw jittered views
            assert jitter == (study.JITTER if arm == "multi-jitter" else {"stain": 0.0, "gamma": 0.0, "blur": 0.0})
    assert "Training loss" in printed and "Held-out loss" in printed and "What each teacher knows" in printed
    assert set(verdicts["last_quarter_drop"]) == set(study.ARMS)  # both curves' last-quarter drop, per arm
    assert all(set(drops) == {"loss_curve", "held_out_curve"} for drops in verdicts["last_quarter_drop"].values())
    assert len([line for line in printed.splitlines() if line.startswith("multi-jitter - multi (the jitter alone)")]) == 1
    assert "VERDICT robustness: the multi-jitter student" in printed
    weights = tmp_path / "study" / "students" / "multi-s1" / "model.safetensors"
    written = weights.stat().st_mtime_ns
    study.main()  # a rerun resumes: nothing is trained again, the same verdicts come out
    again = json.loads((tmp_path / "study" / "verdicts.json").read_text())
    assert weights.stat().st_mtime_ns == written
    assert again["verdicts"] == verdicts["verdicts"] and again["retention"] == verdicts["retention"]

    # one arm alone (a longer run of the best student): its claims are reported, the others say not measured
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", [*args, "--arms", "tissue", "--report-only"])
    study.main()
    printed = capsys.readouterr().out
    alone = json.loads((tmp_path / "study" / "verdicts.json").read_text())
    assert alone["verdicts"]["multi_teacher"] == alone["verdicts"]["matryoshka"] == "not measured"
    assert alone["retention"] == {"tissue": verdicts["retention"]["tissue"]}
    assert "student: nuclei" not in printed and "VERDICT robustness: the tissue student" in printed
    monkeypatch.setattr(sys, "argv", [*args, "--arms", "tissue,bone"])
    with pytest.raises(SystemExit):
        study.main()
    assert "--arms: choose from tissue, nuclei, multi" in capsys.readouterr().err


def test_the_learning_rate_sweep_trains_the_study_student_and_reads_both_curves(tmp_path, capsys, monkeypatch):
    """benchmarks/distill_lr.py at toy size: one student per (arm, lr), trained with the study's own
    arguments, then reused on a rerun; its table reads distill.json's two curves."""
    sweep = load_benchmark("distill_lr")
    registry = tmp_path / "toy.yaml"
    registry.write_text(TOY_REGISTRY)
    args = ["distill_lr.py", "--out", str(tmp_path / "sweep"), "--arms", "tissue", "--lrs", "0.001", "0.004",
            "--steps", "4", "--dataset", "toy-distill", "--include", str(registry), "--cache-dir", str(tmp_path / "cache")]
    monkeypatch.setattr(sys, "argv", args)
    sweep.main()
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| tissue |")]
    assert [row.split(" | ")[1:3] for row in rows] == [["4", "0.001"], ["4", "0.004"]]
    assert "reused" not in printed
    for lr in ("0.001", "0.004"):
        record = json.loads((tmp_path / "sweep" / f"tissue-s0-lr{lr}-4steps" / "distill.json").read_text())
        assert record["config"]["lr"] == float(lr) and record["config"]["student"] == study.STUDENT
        assert record["config"]["steps"] == 4 and [p["step"] for p in record["held_out_curve"]][-1] == 4
        assert f"{record['held_out_curve'][-1]['loss']:.4f}" in printed
    sweep.main()  # a rerun reads what is there
    assert capsys.readouterr().out.count("reused") == 2
    shutil.rmtree(tmp_path / "sweep" / "tissue-s0-lr0.004-4steps")  # a student of other settings in its place
    shutil.copytree(tmp_path / "sweep" / "tissue-s0-lr0.001-4steps", tmp_path / "sweep" / "tissue-s0-lr0.004-4steps")
    with pytest.raises(SystemExit, match="trained for 4 steps at lr 0.001, not 4 at 0.004"):
        sweep.main()
    monkeypatch.setattr(sys, "argv", [*args, "--arms", "bone"])
    with pytest.raises(SystemExit):
        sweep.main()
    assert "--arms: choose from tissue" in capsys.readouterr().err
