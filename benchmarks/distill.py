"""Distillation throughput: the harness's training loop vs the bare student step.

Prints, from one run on this machine (CPU unless CUDA is visible):
  raw student step          steps/s of student forward + backward + AdamW on pre-made tensors
  raw student + teacher     the same plus the teacher's forward pass on the same batch (what an
                            online distiller pays every step)
  teacher targets (once)    seconds to embed the distillation tiles with the teacher, cached
  harness loop              steps/s of `distill` (tile reading, resizing, augmentation, adaptor,
                            loss, clipping, schedule, checkpoints) on cached teacher targets
  harness online loop       steps/s of `distill` with teacher_forward: online (the teacher embeds
                            every augmented batch; summary + patch-token terms), start-up excluded
  ratios                    harness / raw student, harness / (raw student + teacher),
                            harness online / (raw student + teacher)

Student vit_tiny at 112 px, teacher vit_small at 224 px (random weights: speed only), batch 32,
synth-tiles train split as the distillation tiles.

Usage: python benchmarks/distill.py [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from harness.distillers.config import DistillConfig  # noqa: E402
from harness.distillers.run import distill  # noqa: E402
from harness.memory_allocator import keep_freed_memory  # noqa: E402
from harness.distillers.training_loop import build_student  # noqa: E402
from harness.tile_embedding import ExtractOptions, resolve_precision  # noqa: E402
from harness.registry import load_registry  # noqa: E402
from harness.sources import DataContext  # noqa: E402
from harness.tasks import FAMILIES  # noqa: E402


def raw_rate(steps: int, batch: int, with_teacher: bool) -> float:
    import timm

    student = build_student("vit_tiny_patch16_224", 112, 0)
    head = torch.nn.Linear(192, 384)
    optimiser = torch.optim.AdamW([*student.parameters(), *head.parameters()], lr=1e-4)
    teacher = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0).eval()
    x_small, x_big, target = torch.randn(batch, 3, 112, 112), torch.randn(batch, 3, 224, 224), torch.randn(batch, 384)
    started = time.perf_counter()
    for _ in range(steps):
        if with_teacher:
            with torch.no_grad():
                target = teacher(x_big)
        loss = (1 - torch.nn.functional.cosine_similarity(head(student(x_small)), target)).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    keep_freed_memory()  # the allocator `harness distill` sets, for the raw steps and the harness loop alike
    raw = raw_rate(args.steps, 32, with_teacher=False)
    raw_teacher = raw_rate(args.steps, 32, with_teacher=True)
    with tempfile.TemporaryDirectory() as tmp:
        context = DataContext(cache_dir=Path(tmp) / "cache", data_root=Path(tmp) / "data")
        registry = load_registry(None, FAMILIES)
        extract = ExtractOptions(precision=resolve_precision("auto", "cpu"))
        config = DistillConfig(teachers=[{"model": "timm:vit_small_patch16_224", "random_init": True}],
                               dataset="synth-tiles",
                               splits=["train"], steps=args.steps, batch_size=32, checkpoint_every=10_000)
        started = time.perf_counter()
        distill(config.model_copy(update={"steps": 1}), Path(tmp) / "warmup", registry, context, extract)
        targets_s = time.perf_counter() - started
        started = time.perf_counter()
        distill(config, Path(tmp) / "student", registry, context, extract)
        harness = args.steps / (time.perf_counter() - started)
        online = config.model_copy(update={"params": {"teacher_forward": "online", "fit_tiles": 256}})
        elapsed = []
        for steps in (1, args.steps + 1):  # the difference leaves out start-up and the PHI-S fit
            started = time.perf_counter()
            distill(online.model_copy(update={"steps": steps}), Path(tmp) / f"online{steps}", registry, context,
                    extract)
            elapsed.append(time.perf_counter() - started)
        harness_online = args.steps / (elapsed[1] - elapsed[0])
    print(f"raw student step        {raw:7.2f} steps/s")
    print(f"raw student + teacher   {raw_teacher:7.2f} steps/s")
    print(f"teacher targets (once)  {targets_s:7.1f} s (tile generation, teacher embedding, one step)")
    print(f"harness loop            {harness:7.2f} steps/s (cached teacher targets)")
    print(f"harness online loop     {harness_online:7.2f} steps/s (teacher on every batch, patch-token term)")
    print(f"harness / raw student            {harness / raw:5.2f}")
    print(f"harness / (raw student+teacher)  {harness / raw_teacher:5.2f}")
    print(f"harness online / (raw student+teacher)  {harness_online / raw_teacher:5.2f}")


if __name__ == "__main__":
    main()
