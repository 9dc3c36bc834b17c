"""One prepared check for the day a GPU is lent: the CUDA paths measured against their limits.

Parts, each reported on its own (one that fails is written down and the others still run):
  extraction    per model, random weights in the architectures of H0-mini (ViT-B), UNI (ViT-L) and
                H-optimus-0 (ViT-g): the raw forward's img/s (tensors already on the device, bf16
                autocast where the device has it, channels_last, inference mode, warmed up;
                `--compile` adds torch.compile) against the harness's img/s on JPEG tiles in an
                image folder (embed_split: DataLoader workers, DevicePrefetcher) at several worker
                counts, and on OpenSlide pyramids (embed_slides); the ratio, and the fewest workers
                that reach the best rate
  distillation  steps/s of the harness's loop with an online ViT-g teacher and a ViT-S student
                (`distill`, teacher_forward: online) against a raw step on device tensors: the
                teacher's forward, the student's forward and backward, AdamW
  torchrun      `harness run --nproc G` (G = every GPU) on a slide task against one process: the
                speed-up and its share of G
  segmentation  steps/s of eva's conv-with-image decoder (the CoNSeP and MoNuSAC protocol) trained by
                the segmentation family's loop (train_decoder: host-memory features, a batch at a
                time to the device) on ViT-B-shaped maps (768 x 14 x 14, 64 images of 224 px a
                step) on the device against the same loop on the CPU, the time eva's 5 seeds x
                2,000 steps would take on each, and the share of pixels the two decoders, trained
                from the same seed for the same steps, predict alike
  plism         plismbench's all-pairs metrics at PLISM's size (91 slides x 8,139 tiles x 1,536
                dims, synthetic embeddings) on the device, against their FLOP bound (the cross
                blocks' FLOPs / the device's measured float32 GEMM rate); one pair checked
                against the numpy path
Without CUDA the first line says so and every part runs at toy size on the CPU: that is what the
test suite runs (tests/benchmarks/test_gpu_check.py); the CUDA branches are then not exercised.

Writes one JSON (--out) and prints one table.

Usage: python benchmarks/gpu_check.py [--out gpu_check.json] [--toy] [--compile] [--parts extraction,plism]
On a lent GPU machine, from the repository root: its image lacks some of the harness's packages,
so `bash benchmarks/gpu_wheels.sh` downloads their wheels into .whl/ here first, and the command
there installs them and runs this script (both lines are in gpu_wheels.sh's header).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

PARTS = ("extraction", "distillation", "torchrun", "segmentation", "plism")


@dataclass(frozen=True)
class Size:
    models: dict[str, str]  # label -> harness model spec, built with random weights
    tiles: int  # JPEG tiles embedded per pass
    batch: int
    workers: tuple[int, ...]  # DataLoader worker counts tried
    raw_batches: int  # timed batches of the raw forward
    slide_repeats: int  # the slide is a repeats x repeats mosaic of a 1,024 px synthetic slide
    slide_copies: int
    teacher: str
    student: str
    student_size: int
    distill_batch: int
    distill_steps: int
    torchrun_patients: int
    torchrun_model: str
    plism: tuple[int, int, int, int]  # slides, tiles, dims, chunk
    segmentation: tuple[int, int, int, int, int, int]  # feature dims, grid, image px, batch, device steps, CPU steps


FULL = Size(models={"ViT-B (H0-mini)": "h0-mini", "ViT-L (UNI)": "uni", "ViT-g (H-optimus-0)": "h-optimus-0"},
            tiles=4096, batch=256, workers=(4, 8, 15), raw_batches=8, slide_repeats=8, slide_copies=4,
            teacher="h-optimus-0", student="vit_small_patch16_224", student_size=224, distill_batch=64,
            distill_steps=20, torchrun_patients=48, torchrun_model="uni", plism=(91, 8139, 1536, 8192),
            segmentation=(768, 14, 224, 64, 40, 3))
TINY = "timm:vit_tiny_patch16_224"
TOY = Size(models={"toy ViT-Ti": TINY}, tiles=24, batch=8, workers=(0, 1), raw_batches=2, slide_repeats=1,
           slide_copies=1, teacher=TINY, student="vit_tiny_patch16_224", student_size=64, distill_batch=4,
           distill_steps=12, torchrun_patients=9, torchrun_model=TINY, plism=(4, 48, 16, 16),
           segmentation=(8, 4, 32, 4, 6, 3))


@dataclass
class Report:
    environment: dict
    parts: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)  # (part, what, harness, reference, ratio, note)

    def row(self, part: str, what: str, harness: str, reference: str, ratio: float | None, note: str = "") -> None:
        self.rows.append((part, what, harness, reference, "" if ratio is None else f"{ratio:.2f}", note))


def environment() -> dict:
    cuda = torch.cuda.is_available()
    return {"cuda": cuda, "torch": torch.__version__, "gpus": torch.cuda.device_count() if cuda else 0,
            "device_name": torch.cuda.get_device_name(0) if cuda else "cpu", "cpus": os.cpu_count(),
            "bf16": bool(cuda and torch.cuda.is_bf16_supported())}


def synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# --- extraction -------------------------------------------------------------------------------

def raw_forward(encoder, device: str, precision: str, batch: int, batches: int, compiled: bool) -> tuple[float, float]:
    """(img/s, compile seconds) of the bare module on normalised tensors already on the device."""
    from contextlib import nullcontext

    module = encoder.module.eval()
    size = encoder.transform.input_size
    x = torch.randn(batch, 3, size, size, device=device)
    if device.startswith("cuda"):
        module, x = module.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    compile_s = 0.0
    if compiled:
        started = time.perf_counter()
        module = torch.compile(module)
        with torch.inference_mode():
            module(x)  # compilation happens on the first call
        synchronise(device)
        compile_s = time.perf_counter() - started
    autocast = torch.autocast(torch.device(device).type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    with torch.inference_mode(), autocast:
        for _ in range(2):
            module(x)
        synchronise(device)
        started = time.perf_counter()
        for _ in range(batches):
            module(x)
        synchronise(device)
    return batch * batches / (time.perf_counter() - started), compile_s


def write_jpeg_folder(root: Path, n: int) -> Path:
    """n JPEG tiles (quality 90, 224 px, smoothed noise that compresses like tissue) in two class
    folders of one split, and a registry file naming them as an image-folder dataset."""
    from PIL import Image

    rng = np.random.default_rng(0)
    distinct = min(n, 256)
    for i in range(n):
        folder = root / "tiles" / "test" / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i:05d}.jpg"
        if i < distinct:
            small = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)
            Image.fromarray(small).resize((224, 224), Image.BICUBIC).save(path, quality=90)
        else:
            os.link(root / "tiles" / "test" / ("a" if (i % distinct) % 2 else "b") / f"{i % distinct:05d}.jpg", path)
    registry = root / "check.yaml"
    registry.write_text(f"datasets:\n  check-tiles:\n    source: imagefolder\n    path: {root / 'tiles'}\n"
                        "    splits: [test]\n    classes: [a, b]\n    mpp: 0.5\n")
    return registry


def part_extraction(report: Report, size: Size, device: str, precision: str, root: Path, compiled: bool) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from wsi import big_slide

    from harness.embedding_cache import EmbeddingCache
    from harness.models.loading import LoadOptions, load_encoder
    from harness.registry import TilingSpec, load_registry
    from harness.slides.slide_embedding import embed_slides
    from harness.sources import DataContext, open_source
    from harness.tile_embedding import ExtractOptions, embed_split

    registry = load_registry([write_jpeg_folder(root, size.tiles)])
    context = DataContext(cache_dir=root / "cache", data_root=root)
    source = open_source("check-tiles", registry.datasets["check-tiles"], context)
    slide = big_slide(root / "slide", repeats=size.slide_repeats)
    slides = []
    for c in range(size.slide_copies):
        copy = root / "slide" / f"copy{c}.tiff"
        os.link(slide, copy)
        slides.append(copy)
    results = {}
    for label, spec in size.models.items():
        encoder = load_encoder(spec, LoadOptions(random_init=True, device=device))
        raw, compile_s = raw_forward(encoder, device, precision, size.batch, size.raw_batches, False)
        entry = {"model": spec, "parameters": encoder.info.n_parameters, "raw_img_s": raw, "jpeg": {}}
        if compiled:
            entry["compiled_img_s"], entry["compile_s"] = raw_forward(encoder, device, precision, size.batch,
                                                                      size.raw_batches, True)
        for workers in size.workers:
            options = ExtractOptions(batch_size=size.batch, num_workers=workers, device=device, precision=precision)
            started = time.perf_counter()
            embed_split(encoder, source, source.fingerprint(), "test", EmbeddingCache(root / f"c-{label}-{workers}"),
                        options)
            entry["jpeg"][workers] = size.tiles / (time.perf_counter() - started)
        best = max(entry["jpeg"].values())
        needed = min(w for w, rate in entry["jpeg"].items() if rate >= 0.95 * best)
        workers = max(size.workers)
        options = ExtractOptions(batch_size=size.batch, num_workers=workers, device=device, precision=precision)
        started = time.perf_counter()
        done = embed_slides(encoder, slides, TilingSpec(), EmbeddingCache(root / f"s-{label}"), options, "check")
        n_slide_tiles = sum(len(f) for f in done.features)
        entry["slide_img_s"] = n_slide_tiles / (time.perf_counter() - started)
        entry["slide_tiles"] = n_slide_tiles
        results[label] = entry
        report.row("extraction", f"{label} JPEG", f"{best:.0f} img/s", f"raw {raw:.0f} img/s", best / raw,
                   f"{needed} workers reach 95% of the best; {encoder.info.n_parameters / 1e6:.0f}M params")
        report.row("extraction", f"{label} slide", f"{entry['slide_img_s']:.0f} img/s", f"raw {raw:.0f} img/s",
                   entry["slide_img_s"] / raw, f"{n_slide_tiles} tiles, {workers} workers, start-up included")
        if compiled:
            report.row("extraction", f"{label} compiled", f"{entry['compiled_img_s']:.0f} img/s",
                       f"raw {raw:.0f} img/s", entry["compiled_img_s"] / raw, f"compile {entry['compile_s']:.0f} s")
        del encoder
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    report.parts["extraction"] = {"models": results}


# --- distillation ------------------------------------------------------------------------------

def raw_distill_rate(size: Size, device: str, precision: str, steps: int) -> float:
    from contextlib import nullcontext

    from harness.distillers.training_loop import build_student
    from harness.models.loading import LoadOptions, load_encoder

    teacher = load_encoder(size.teacher, LoadOptions(random_init=True, device=device)).module.eval()
    student = build_student(size.student, size.student_size, 0).to(device)
    with torch.no_grad():
        student_dim = student(torch.zeros(1, 3, size.student_size, size.student_size, device=device)).shape[1]
        teacher_dim = teacher(torch.zeros(1, 3, 224, 224, device=device)).shape[1]
    head = torch.nn.Linear(student_dim, teacher_dim).to(device)
    optimiser = torch.optim.AdamW([*student.parameters(), *head.parameters()], lr=1e-4)
    x_teacher = torch.randn(size.distill_batch, 3, 224, 224, device=device)
    x_student = torch.randn(size.distill_batch, 3, size.student_size, size.student_size, device=device)
    autocast = (torch.autocast(torch.device(device).type, dtype=torch.bfloat16) if precision == "bf16"
                else nullcontext())

    def step():
        with torch.no_grad(), autocast:
            target = teacher(x_teacher).float()
        with autocast:
            loss = (1 - torch.nn.functional.cosine_similarity(head(student(x_student)).float(), target)).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    step()
    synchronise(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronise(device)
    return steps / (time.perf_counter() - started)


def steps_per_second(steps: int, one_step_s: float, more_steps_s: float) -> float:
    """The rate of `steps` steps timed as the difference of a run of 1 + steps and a run of 1 (which
    leaves out start-up); refused when the steps took less than start-up varies by."""
    if more_steps_s <= one_step_s:
        raise RuntimeError(f"{steps} steps took less time than the start-up's variation "
                           f"({more_steps_s:.2f} s against {one_step_s:.2f} s for one step): time more steps")
    return steps / (more_steps_s - one_step_s)


def part_distillation(report: Report, size: Size, device: str, precision: str, root: Path) -> None:
    from harness.distillers.config import DistillConfig
    from harness.distillers.run import distill
    from harness.registry import load_registry
    from harness.sources import DataContext
    from harness.tile_embedding import ExtractOptions
    from harness.tasks import FAMILIES

    registry_file = root / "check.yaml"
    if not registry_file.exists():
        write_jpeg_folder(root, size.tiles)
    registry = load_registry([registry_file], FAMILIES)
    context = DataContext(cache_dir=root / "cache", data_root=root)
    extract = ExtractOptions(batch_size=size.batch, device=device, precision=precision,
                             num_workers=max(size.workers))
    config = DistillConfig(teachers=[{"model": size.teacher, "random_init": True}], student=size.student,
                           student_input_size=size.student_size, dataset="check-tiles", splits=["test"],
                           batch_size=size.distill_batch, checkpoint_every=100_000,
                           params={"teacher_forward": "online", "fit_tiles": min(256, size.tiles)})
    distill(config.model_copy(update={"steps": 1}), root / "warm-up", registry, context, extract)
    elapsed = []
    for steps in (1, size.distill_steps + 1):  # the difference leaves out start-up and the PHI-S fit
        started = time.perf_counter()
        distill(config.model_copy(update={"steps": steps}), root / f"student{steps}", registry, context, extract)
        synchronise(device)
        elapsed.append(time.perf_counter() - started)
    harness = steps_per_second(size.distill_steps, elapsed[0], elapsed[1])
    raw = raw_distill_rate(size, device, precision, size.distill_steps)
    report.parts["distillation"] = {"teacher": size.teacher, "student": size.student, "batch": size.distill_batch,
                                    "harness_steps_s": harness, "raw_steps_s": raw, "start_up_s": elapsed[0]}
    report.row("distillation", f"{size.teacher} -> {size.student}", f"{harness:.2f} steps/s",
               f"raw {raw:.2f} steps/s", harness / raw, f"batch {size.distill_batch}, online teacher")


# --- torchrun ----------------------------------------------------------------------------------

SLIDE_TASK = """
datasets:
  check-slides:
    source: wsi
    path: cohort/slides.csv
    label_column: label
    classes: [benign, low-grade, high-grade]
tasks:
  check-grade:
    family: slide_classification
    dataset: check-slides
    main_score: balanced_accuracy
    params: {folds: 3, abmil: {epochs: 2}, probe_max_steps: 50, bootstrap_resamples: 50}
"""


def part_torchrun(report: Report, size: Size, device: str, root: Path, processes: int) -> None:
    from harness.synth.slide_suite import SyntheticSlideParams, build_slide_suite

    build_slide_suite(root / "cohort", SyntheticSlideParams(n_patients=size.torchrun_patients,
                                                            second_slide_fraction=0.0, seed=4))
    lines = (root / "cohort" / "slides.csv").read_text().splitlines()
    (root / "cohort" / "slides.csv").write_text("\n".join(",".join(line.split(",")[:3]) for line in lines) + "\n")
    (root / "slides.yaml").write_text(SLIDE_TASK)
    walls = {}
    for n in sorted({1, processes}):
        command = [sys.executable, "-m", "harness", "run", "--model", size.torchrun_model, "--random-init",
                   "--tasks", "check-grade", "--include", str(root / "slides.yaml"), "--data-root", str(root),
                   "--cache-dir", str(root / f"cache-np{n}"), "--output", str(root / f"out-np{n}"),
                   "--device", "cuda" if device.startswith("cuda") else "cpu", "--verbose"]
        if n > 1:
            command += ["--nproc", str(n)]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
        walls[n] = time.perf_counter() - started
        if done.returncode != 0:  # the run's own traceback (--verbose) is kept in the report
            report.parts["torchrun"] = {"stderr_tail": done.stderr.strip().splitlines()[-40:]}
            raise RuntimeError(f"--nproc {n} exited {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
        result = json.loads(next((root / f"out-np{n}").glob("*/check-grade.json")).read_text())
        if result["status"] != "ok":
            raise RuntimeError(f"--nproc {n}: the task's status is {result['status']}")
    speed_up = walls[1] / walls[processes]
    report.parts["torchrun"] = {"processes": processes, "run_wall_s": walls, "speed_up": speed_up,
                                "slides": size.torchrun_patients}
    note = ("one process only: nothing to scale across" if processes == 1
            else f"speed-up {speed_up:.2f} of {processes}, start-up included")
    report.row("torchrun", f"{processes} process(es), {size.torchrun_patients} slides", f"{walls[processes]:.1f} s",
               f"1 process {walls[1]:.1f} s", speed_up / processes, note)


# --- segmentation decoder ----------------------------------------------------------------------

EVA_SEGMENTATION_STEPS = 5 * 2000  # eva's n_runs x max_steps (its CoNSeP and MoNuSAC configs)


def part_segmentation(report: Report, size: Size, device: str) -> None:
    from harness.scoring.segmentation_head import DecoderConfig, DenseBatches, predict, train_decoder

    dims, grid, side, batch, steps, cpu_steps = size.segmentation
    rng = np.random.default_rng(0)
    n = 2 * batch  # two batches: training cycles through them; the first is also the validation batch

    def batches(count: int) -> DenseBatches:
        return DenseBatches(rng.standard_normal((count, dims, grid, grid)).astype(np.float16),
                            rng.integers(0, 256, (count, side, side, 3), dtype=np.uint8),
                            rng.integers(0, 5, (count, side, side)).astype(np.uint8))

    train, val = batches(n), batches(batch)

    def agreement(predicted, masks):
        return float((predicted == masks).mean())

    def trained(on: str, k: int):
        config = DecoderConfig(kind="conv-with-image", steps=k, batch_size=batch, eval_every=k)
        synchronise(on)
        started = time.perf_counter()
        fitted = train_decoder(train, val, 5, config, 0, agreement, device=on)
        synchronise(on)
        return fitted, time.perf_counter() - started

    def rate(on: str, k: int):
        trained(on, 1)  # warm-up (cuDNN picks its kernels)
        (_, one), (fitted, more) = trained(on, 1), trained(on, 1 + k)
        return steps_per_second(k, one, more), fitted

    device_rate, _ = rate(device, steps)
    cpu_rate, cpu_decoder = rate("cpu", cpu_steps)
    device_decoder, _ = trained(device, 1 + cpu_steps)
    same = float((predict(device_decoder.decoder, val, batch, device)
                  == predict(cpu_decoder.decoder, val, batch, "cpu")).mean())
    report.parts["segmentation"] = {"device_steps_s": device_rate, "cpu_steps_s": cpu_rate,
                                    "eva_protocol_device_s": EVA_SEGMENTATION_STEPS / device_rate,
                                    "eva_protocol_cpu_s": EVA_SEGMENTATION_STEPS / cpu_rate,
                                    "pixels_alike": same, "steps_compared": 1 + cpu_steps}
    report.row("segmentation", f"conv-with-image on {dims} x {grid} x {grid} maps, {batch} x {side} px",
               f"{device_rate:.2f} steps/s", f"CPU {cpu_rate:.2f} steps/s", device_rate / cpu_rate,
               f"eva's 5 x 2,000 steps: {EVA_SEGMENTATION_STEPS / device_rate / 60:.1f} min here, "
               f"{EVA_SEGMENTATION_STEPS / cpu_rate / 3600:.1f} h on the CPU; {same:.1%} of pixels alike after "
               f"{1 + cpu_steps} steps")


# --- PLISM metrics -----------------------------------------------------------------------------

def gemm_rate(n: int, d: int, chunk: int, device: str, seconds: float = 2.0) -> float:
    a = torch.randn(min(chunk, n), d, device=device)
    b = torch.randn(n, d, device=device)
    a @ b.T
    synchronise(device)
    best, spent = 0.0, 0.0
    while spent < seconds:
        started = time.perf_counter()
        a @ b.T
        synchronise(device)
        elapsed = time.perf_counter() - started
        spent += elapsed
        best = max(best, 2 * len(a) * n * d / elapsed)
    return best


def part_plism(report: Report, size: Size, device: str) -> None:
    from itertools import combinations

    from harness.scoring.plism_metrics import all_pair_metrics, pair_metrics

    s, n, d, chunk = size.plism
    generator = torch.Generator(device=device).manual_seed(0)
    base = torch.randn(n, d, device=device, generator=generator)
    slides = [(base + (0.3 + 1.7 * i / s) * torch.randn(n, d, device=device, generator=generator)).cpu().numpy()
              for i in range(s)]
    pairs = list(combinations(range(s), 2))
    rate = gemm_rate(n, d, chunk, device)
    bound = len(pairs) * 2 * n * n * d / rate
    started = time.perf_counter()
    metrics = all_pair_metrics(slides, pairs, chunk_size=chunk, device=device)
    synchronise(device)
    evaluation = time.perf_counter() - started
    alone = pair_metrics(slides[0], slides[1])  # numpy on the CPU: the reference path
    difference = max(abs(alone[k] - metrics[(0, 1)][k]) for k in alone)
    report.parts["plism"] = {"slides": s, "tiles": n, "dim": d, "chunk": chunk, "gemm_tflop_s": rate / 1e12,
                             "bound_s": bound, "evaluation_s": evaluation, "pair_0_1_max_difference": difference}
    report.row("plism", f"{s} slides x {n} tiles x {d} dims", f"{evaluation:.1f} s", f"bound {bound:.1f} s",
               bound / evaluation, f"GEMM {rate / 1e12:.1f} TFLOP/s fp32; pair (0,1) vs numpy {difference:.1e}")


# --- the check ---------------------------------------------------------------------------------

def run_check(out: Path, toy: bool = False, compiled: bool = False, parts: tuple[str, ...] = PARTS) -> Report:
    from harness.tile_embedding import resolve_precision

    env = environment()
    device = "cuda" if env["cuda"] else "cpu"
    size = TOY if toy or not env["cuda"] else FULL
    env.update(size="toy" if size is TOY else "full", device=device, precision=resolve_precision("auto", device))
    print("CUDA found: " + env["device_name"] if env["cuda"] else
          "CUDA absent: every part runs at toy size on the CPU (the CUDA branches are not exercised)", flush=True)
    report = Report(env)
    with tempfile.TemporaryDirectory() as tmp:
        for part in parts:
            started = time.perf_counter()
            root = Path(tmp) / part
            root.mkdir()
            try:
                if part == "extraction":
                    part_extraction(report, size, device, env["precision"], root, compiled)
                elif part == "distillation":
                    part_distillation(report, size, device, env["precision"], root)
                elif part == "torchrun":
                    part_torchrun(report, size, device, root, max(1, env["gpus"]) if env["cuda"] else 2)
                elif part == "segmentation":
                    part_segmentation(report, size, device)
                elif part == "plism":
                    part_plism(report, size, device)
            except Exception as error:  # noqa: BLE001 - one part's failure is reported, the others run
                report.parts.setdefault(part, {}).update(error=f"{type(error).__name__}: {error}",
                                                         traceback=traceback.format_exc(limit=8))
                report.row(part, "FAILED", "", "", None, f"{type(error).__name__}: {str(error)[:120]}")
            report.parts.setdefault(part, {})["part_s"] = time.perf_counter() - started
            print(f"{part} done in {report.parts[part]['part_s']:.0f} s", flush=True)
            # written after every part, so that a run stopped at its time limit keeps what it measured
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(asdict(report), indent=1, default=str))
    print_table(report)
    return report


def print_table(report: Report) -> None:
    from rich.console import Console
    from rich.table import Table

    env = report.environment
    table = Table(title=f"GPU check on {env['device_name']} ({env['size']} size, {env['precision']}, "
                        f"torch {env['torch']})")
    for column in ("part", "what", "harness", "reference", "ratio", "note"):
        table.add_column(column)
    for row in report.rows:
        table.add_row(*row)
    Console(width=160).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_check.json")
    parser.add_argument("--toy", action="store_true", help="toy sizes even on a GPU")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd forwards")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    args = parser.parse_args(argv)
    parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"--parts: unknown {', '.join(unknown)}; give some of {', '.join(PARTS)}")
    report = run_check(Path(args.out), args.toy, args.compile, parts)
    return 1 if any("error" in p for p in report.parts.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
