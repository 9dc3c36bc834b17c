"""Can the distillation study's student train faster on this CPU? One bare training step of the
study's student (convnext_atto with depths 1-1-1-1 and dims 16-32-48-64, 224 px, batch 32,
forward + a 384-d adaptor + cosine loss + backward + AdamW), in four set-ups, each against fp32:

  fp32             the loop's CPU default
  channels_last    the memory format the loop uses on CUDA
  bf16             torch.autocast("cpu", bfloat16)
  compile          torch.compile of the student (its compile time printed apart)

Prints steps/s per set-up and its ratio to the first one asked (fp32 by default), from one run. What it answers: whether the
3,200-step study could fit 90 minutes on 2 cores by a faster step (it needs about 2x).

The allocator is the harness's (`harness.memory_allocator`, as `harness distill` sets it);
HARNESS_ALLOCATOR=system measures with glibc's defaults.

Usage: python benchmarks/student_step.py [--steps 30] [--setups fp32,bf16]
"""

from __future__ import annotations

import argparse
import time

import torch

from harness.memory_allocator import keep_freed_memory

SETUPS = ("fp32", "channels_last", "bf16", "compile")
STUDENT_KWARGS = {"depths": [1, 1, 1, 1], "dims": [16, 32, 48, 64]}


def steps_per_second(setup: str, steps: int) -> tuple[float, float]:
    """(steps/s after warm-up, warm-up seconds) of one set-up."""
    import timm

    torch.manual_seed(0)
    student = timm.create_model("convnext_atto", pretrained=False, num_classes=0, **STUDENT_KWARGS)
    adaptor = torch.nn.Linear(64, 384)
    optimiser = torch.optim.AdamW([*student.parameters(), *adaptor.parameters()], lr=1e-3)
    x, target = torch.randn(32, 3, 224, 224), torch.randn(32, 384)
    if setup == "channels_last":
        student, x = student.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    forward = torch.compile(student) if setup == "compile" else student
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=setup == "bf16")

    def step() -> None:
        with autocast:
            out = adaptor(forward(x)).float()
        loss = 1 - torch.nn.functional.cosine_similarity(out, target).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    started = time.perf_counter()
    for _ in range(3):
        step()
    warm = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - started), warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--setups", default=",".join(SETUPS), help=f"comma-separated, of {', '.join(SETUPS)}")
    args = parser.parse_args()
    setups = [s for s in args.setups.split(",") if s]
    if not setups or set(setups) - set(SETUPS):
        parser.error(f"--setups: choose among {', '.join(SETUPS)}")
    print(keep_freed_memory())
    print(f"threads: {torch.get_num_threads()}; {args.steps} timed steps after 3 of warm-up")
    base = None
    for setup in setups:
        rate, warm = steps_per_second(setup, args.steps)
        base = base or rate
        print(f"{setup:14s} {rate:6.2f} steps/s  {rate / base:4.2f}x {setups[0]}  (warm-up {warm:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
