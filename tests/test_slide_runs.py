"""Slide tasks end to end: bad slides are named and counted while the run goes on, and
`--nproc 2` (torchrun, gloo) splits the slides and gives the 1-process results."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.synth.slide_suite import SyntheticSlideParams, build_slide_suite
from tests.support.registries import SLIDE_REGISTRY as REGISTRY
from tests.support.slide_files import with_resolution, write_blank_slide

HARNESS = str(Path(sys.executable).parent / "harness")
@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> tuple[Path, Path]:
    """9 good synthetic slides (3 per grade), a corrupt file, a blank slide, a missing one, and one that
    claims 352.8 um/px (as openslide-python's boxes.tiff does)."""
    root = tmp_path_factory.mktemp("wsi")
    suite = root / "suite"
    build_slide_suite(suite, SyntheticSlideParams(n_patients=9, second_slide_fraction=0.0, seed=4), workers=1)
    shutil.copytree(suite / "slides", root / "cohort" / "slides")
    lines = (suite / "slides.csv").read_text().splitlines()
    header = lines[0]
    rows = [",".join(line.split(",")[:3]) for line in lines[1:]]
    (root / "cohort" / "slides" / "corrupt.svs").write_bytes(b"II*\x00" + os.urandom(2048))
    write_blank_slide(root / "cohort" / "slides" / "blank.tiff")
    with_resolution(sorted((suite / "slides").glob("*.tiff"))[0], root / "cohort" / "slides" / "boxes.tiff", 352.8)
    rows += ["slides/corrupt.svs,X1,benign", "slides/blank.tiff,X2,low-grade", "slides/missing.tiff,X3,high-grade",
             "slides/boxes.tiff,X4,benign"]
    (root / "cohort" / "slides.csv").write_text("\n".join([",".join(header.split(",")[:3]), *rows]) + "\n")
    registry = root / "cohort.yaml"
    registry.write_text(REGISTRY)
    return root, registry


def args(root, registry, cache, out):
    return ["run", "--model", "timm:vit_tiny_patch16_224", "--random-init", "--tasks", "cohort-grade",
            "--include", str(registry), "--data-root", str(root), "--cache-dir", str(cache), "--output", str(out),
            "--precision", "fp32"]


def result_of(out: Path) -> dict:
    return json.loads(next(out.glob("*/cohort-grade.json")).read_text())


def test_bad_slides_are_named_counted_and_the_run_goes_on(cohort, tmp_path):
    root, registry = cohort
    assert main(args(root, registry, tmp_path / "cache", tmp_path / "out")) == 0
    result = result_of(tmp_path / "out")
    assert result["status"] == "ok" and result["n_samples"]["slides"] == 9
    assert result["n_samples"]["failed_slides"] == 4
    failed = {Path(k).name: v for k, v in result["details"]["failed_slides"].items()}
    assert failed["boxes.tiff"].startswith("implausible resolution: 352.8 um/px")
    assert failed["corrupt.svs"].startswith("cannot open")
    assert failed["blank.tiff"].startswith("no tissue")
    assert failed["missing.tiff"].startswith("cannot open")
    # run again: reused; a slide scanned again under its name (here: a new modification time) scores it again
    written = next((tmp_path / "out").glob("*/cohort-grade.json"))
    before = written.stat().st_mtime_ns
    assert main(args(root, registry, tmp_path / "cache", tmp_path / "out")) == 0
    assert written.stat().st_mtime_ns == before
    slide = root / "cohort" / "slides" / "boxes.tiff"
    os.utime(slide, ns=(slide.stat().st_atime_ns, slide.stat().st_mtime_ns + 10**9))
    assert main(args(root, registry, tmp_path / "cache", tmp_path / "out")) == 0
    assert written.stat().st_mtime_ns != before and result_of(tmp_path / "out")["metrics"] == result["metrics"]


def test_a_model_blind_to_its_input_is_not_scored_on_slides(cohort, tmp_path):
    """Every tile of every slide one embedding (a checkpoint whose final norm is zeroed): its slide
    scores were chance, written as a result; tile tasks already refused such a model."""
    import timm
    import torch
    from safetensors.torch import save_file

    root, registry = cohort
    state = timm.create_model("vit_tiny_patch16_224", num_classes=0).state_dict()
    folder = tmp_path / "blind"
    folder.mkdir()
    save_file({k: torch.zeros_like(v) if k.startswith("norm.") else v.contiguous() for k, v in state.items()},
              str(folder / "model.safetensors"))
    (folder / "card.yaml").write_text("name: lab/blind\narchitecture: vit_tiny_patch16_224\npooling: cls\n")
    argv = args(root, registry, tmp_path / "cache", tmp_path / "out")
    argv[argv.index("--model") + 1:argv.index("--random-init") + 1] = [str(folder)]
    assert main(argv) == 1
    failed = result_of(tmp_path / "out")
    assert failed["status"] == "failed" and failed["reason"].startswith(
        "lab/blind gives the same embedding to all ") and "tiles of the 9 slides of cohort: it ignores its input" in \
        failed["reason"]


def test_two_torchrun_processes_split_slides_and_match_one(cohort, tmp_path):
    root, registry = cohort
    assert main(args(root, registry, tmp_path / "cache1", tmp_path / "out1")) == 0
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run([HARNESS, *args(root, registry, tmp_path / "cache2", tmp_path / "out2"), "--nproc", "2"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = result_of(tmp_path / "out1"), result_of(tmp_path / "out2")
    assert two["n_samples"] == one["n_samples"]
    for name, metric in one["metrics"].items():
        assert two["metrics"][name]["mean"] == pytest.approx(metric["mean"], abs=1e-6), name
    metas = [json.loads(p.read_text()) for p in (tmp_path / "cache2" / "embeddings").glob("*/meta.json")]
    assert len(metas) == 9 and len({m["slide"] for m in metas}) == 9  # each slide embedded exactly once
    assert {m["rank"] for m in metas} == {0, 1}  # by both ranks
    assert len(list((tmp_path / "out2").glob("*/*.json"))) == 1  # only rank 0 wrote results
