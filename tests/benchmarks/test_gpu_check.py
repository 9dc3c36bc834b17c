"""benchmarks/gpu_check.py, the prepared device check: at toy size on this CPU every part runs and
reports numbers that mean what they say; a part that fails is written down and the others still run."""

from __future__ import annotations

import json

import pytest
import torch

from tests.support.benchmark_scripts import load_benchmark


def load_check():
    return load_benchmark("gpu_check")


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA machine the check runs at full size instead")
def test_every_part_runs_at_toy_size_on_the_cpu(tmp_path, capsys):
    check = load_check()
    code = check.main(["--out", str(tmp_path / "check.json")])
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].startswith("CUDA absent: every part runs at toy size on the CPU")
    assert code == 0, printed[-3000:]
    report = json.loads((tmp_path / "check.json").read_text())
    assert report["environment"]["size"] == "toy" and report["environment"]["cuda"] is False
    parts = report["parts"]
    assert set(parts) == set(check.PARTS) and not any("error" in p for p in parts.values())
    (model,) = parts["extraction"]["models"].values()
    assert model["raw_img_s"] > 0 and set(model["jpeg"]) == {"0", "1"} and model["slide_tiles"] > 0
    assert parts["distillation"]["harness_steps_s"] > 0 and parts["distillation"]["raw_steps_s"] > 0
    assert parts["torchrun"]["processes"] == 2 and set(parts["torchrun"]["run_wall_s"]) == {"1", "2"}
    assert parts["segmentation"]["device_steps_s"] > 0 and parts["segmentation"]["cpu_steps_s"] > 0
    assert parts["segmentation"]["pixels_alike"] == 1.0  # the same device: the same decoder, bit for bit
    assert parts["plism"]["pair_0_1_max_difference"] == 0.0  # the torch path counts what numpy counts
    assert parts["plism"]["bound_s"] > 0 and parts["plism"]["evaluation_s"] > 0
    for title in ("toy ViT-Ti JPEG", "toy ViT-Ti slide", "distillation", "torchrun", "segmentation", "plism"):
        assert title in printed


def test_a_failing_part_is_reported_and_the_others_still_run(tmp_path, monkeypatch, capsys):
    check = load_check()

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(check, "part_distillation", broken)
    code = check.main(["--out", str(tmp_path / "check.json"), "--parts", "distillation,plism", "--toy"])
    assert code == 1
    parts = json.loads((tmp_path / "check.json").read_text())["parts"]
    assert parts["distillation"]["error"] == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert "error" not in parts["plism"] and parts["plism"]["evaluation_s"] > 0
    assert "FAILED" in capsys.readouterr().out


def test_a_run_stopped_at_its_time_limit_keeps_the_parts_it_finished(tmp_path, monkeypatch):
    """On a lent GPU the command is killed at its limit: the JSON is written after every part."""
    check = load_check()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # what a timeout's SIGINT raises; not caught as a part's failure

    monkeypatch.setattr(check, "part_distillation", killed)
    with pytest.raises(KeyboardInterrupt):
        check.main(["--out", str(tmp_path / "check.json"), "--parts", "plism,distillation", "--toy"])
    parts = json.loads((tmp_path / "check.json").read_text())["parts"]
    assert parts["plism"]["evaluation_s"] > 0 and "distillation" not in parts


def test_unknown_parts_are_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        load_check().main(["--out", str(tmp_path / "x.json"), "--parts", "extraction,warp-drive"])
    assert "--parts: unknown warp-drive; give some of extraction, distillation, torchrun, segmentation, plism" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here: the CUDA branches (channels_last, "
                    "pinned non_blocking copies, bf16 autocast, per-rank GPUs, the segmentation decoder and the PLISM counts on "
                    "the device) run "
                    "only in the prepared device check, `python benchmarks/gpu_check.py` on a lent GPU")
def test_toy_check_on_cuda(tmp_path):
    assert load_check().main(["--out", str(tmp_path / "check.json"), "--toy"]) == 0


def test_a_distillation_rate_is_never_negative():
    check = load_check()
    assert check.steps_per_second(12, 1.5, 3.5) == pytest.approx(6.0)
    with pytest.raises(RuntimeError, match="12 steps took less time than the start-up's variation"):
        check.steps_per_second(12, 1.6, 1.5)  # what CI saw with 2 steps: a negative difference
