"""Train the two synthetic teachers of the distillation study: networks that know different things.

UNI and Virchow2 were trained on different data and know different things; a multi-teacher
student is meant to combine them. These two stand in for such a pair on the synthetic suite:

  synth-teacher-tissue  tissue and context: trained on the six tissues only, reading the tile at
                        112 px (1 um/px, a lower magnification: architecture and colour, not nuclei)
  synth-teacher-nuclei  nuclear morphology: trained on nuclear grade and mitotic activity of tumour
                        tiles only, at 224 px (0.5 um/px, where a mitotic figure is ~18 x 5 px)

Both are the same narrow timm ResNet (one basic block per stage, channels 24-48-128-320,
1.6M parameters: over ten times the study's 92k-parameter students), trained supervised on
freshly drawn tiles of seed 103 (the scored suite uses seed 0, the distillation tiles seed 2,
synth-reference seed 101) with harness/synth/reference_training.py's loop, and shipped as a
plain timm state dict + card under harness/data/<name>/. What each one knows is measured, not
assumed: benchmarks/distill_retention.py prints both on every synthetic task.

Usage: python -m harness.synth.teacher_training --teacher synth-teacher-nuclei --out harness/data/synth-teacher-nuclei
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import torch

from harness.synth.reference_training import held_out_accuracy, save, train

TEACHER_KWARGS = {"layers": [1, 1, 1, 1], "channels": [24, 48, 128, 320], "stem_width": 24}
TRAINING_SEED = 103


@dataclass(frozen=True)
class TeacherRecipe:
    tasks: tuple[str, ...]
    per_class: dict[str, int]
    epochs: int
    input_size: int
    knows: str
    timm_kwargs: dict = field(default_factory=lambda: dict(TEACHER_KWARGS))


TEACHERS = {
    "synth-teacher-tissue": TeacherRecipe(("tissue",), {"tissue": 250}, epochs=12, input_size=112,
                                          knows="tissue and context (six tissues, read at 112 px)"),
    "synth-teacher-nuclei": TeacherRecipe(("grade", "mitosis"), {"grade": 300, "mitosis": 400}, epochs=18,
                                          input_size=224,
                                          knows="nuclear morphology (grade, mitoses of tumour tiles, at 224 px)"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", choices=sorted(TEACHERS), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, help="default: the shipped checkpoint's")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    recipe = TEACHERS[args.teacher]
    epochs = args.epochs or recipe.epochs
    model, report = train(recipe.per_class, epochs, args.seed, tasks=recipe.tasks, timm_kwargs=recipe.timm_kwargs,
                          input_size=recipe.input_size, training_seed=TRAINING_SEED, name=args.teacher)
    report["held_out_accuracy"] = held_out_accuracy(model, 30, TRAINING_SEED + 1, recipe.input_size)
    report["parameters"] = sum(p.numel() for p in model["backbone"].parameters())
    print(report)
    notes = (f"a synthetic-suite teacher that knows {recipe.knows}; trained by harness/synth/teacher_training.py "
             f"on synthetic tiles of seed {TRAINING_SEED}: {report}")
    save(model, args.out, report, name=args.teacher, timm_kwargs=recipe.timm_kwargs, input_size=recipe.input_size,
         notes=notes)
    print(f"saved {args.out}")


if __name__ == "__main__":
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    main()
