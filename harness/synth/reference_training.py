"""Train `synth-reference`: a small CNN that learns the synthetic suite's morphology on the CPU.

The bracket around every synthetic task needs a model that is neither an oracle (it reads
pixels, not the latent) nor untrained: this one is trained, supervised, on freshly drawn tiles
of another seed than the suite's (tissue, grade and mitosis tasks, one linear head each, with
flips and 90-degree rotations), and then scored like any submitted checkpoint. If it closes most
of the gap between random-noise and synth-oracle while untrained networks do not, the suite
rewards features a network can learn.

The network is timm's ResNet with one basic block per stage and narrow stages, so the shipped
checkpoint is a plain timm state dict with a card (harness/data/synth-reference/).

Usage: python -m harness.synth.reference_training --out harness/data/synth-reference
(the defaults are the shipped checkpoint's settings: 12 epochs, 150/300/400 tiles per class)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn
from torch.nn import functional

from harness.models.card import IMAGENET_MEAN, IMAGENET_STD
from harness.progress import progress_bar
from harness.synth.tile_suite import TASK_CLASSES, SyntheticTileParams, build_tile_suite

ARCHITECTURE = "resnet18"
TIMM_KWARGS = {"layers": [1, 1, 1, 1], "channels": [24, 48, 96, 160], "stem_width": 24}
TRAINING_SEED = 101  # the suite's datasets use seed 0
TASKS = ("tissue", "grade", "mitosis")


def draw_training_tiles(task: str, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of a freshly generated tile dataset, built by the suite's own writer."""
    params = SyntheticTileParams(task=task, per_class={"train": per_class}, seed=seed)
    with tempfile.TemporaryDirectory() as folder:
        build_tile_suite(Path(folder) / task, params)
        return np.load(Path(folder) / task / "train" / "images.npy"), np.load(Path(folder) / task / "train" / "labels.npy")


def build_backbone(timm_kwargs: dict | None = None) -> nn.Module:
    import timm

    return timm.create_model(ARCHITECTURE, pretrained=False, num_classes=0, **(timm_kwargs or TIMM_KWARGS))


def to_input(images: np.ndarray, size: int | None = None) -> torch.Tensor:
    """uint8 tiles -> normalised float, resized to `size` as the harness resizes (bilinear, antialiased)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    if size is not None and x.shape[-1] != size:
        x = functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    if rng.random() < 0.5:
        x = x.flip(3)
    return torch.rot90(x, int(rng.integers(4)), dims=(2, 3))


def train(per_class: dict[str, int], epochs: int, seed: int, batch_size: int = 32, tasks: tuple[str, ...] = TASKS,
          timm_kwargs: dict | None = None, input_size: int | None = None, training_seed: int = TRAINING_SEED,
          name: str = "synth-reference") -> tuple[nn.Module, dict]:
    """One backbone, a linear head per task in `tasks`, trained jointly on freshly drawn tiles of
    `training_seed` (the other teachers, harness/synth/teacher_training.py, pick their tasks)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = {task: draw_training_tiles(task, per_class[task], training_seed) for task in tasks}
    backbone = build_backbone(timm_kwargs)
    heads = nn.ModuleDict({task: nn.Linear(backbone.num_features, len(TASK_CLASSES[task])) for task in tasks})
    model = nn.ModuleDict({"backbone": backbone, "heads": heads})
    items = [(task, i) for task in tasks for i in range(len(data[task][1]))]
    steps = epochs * (len(items) // batch_size)
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    model.train()
    started = time.perf_counter()
    with progress_bar(f"training {name}", steps, unit="steps") as advance:
        for _ in range(epochs):
            order = rng.permutation(len(items))
            for start in range(0, len(order) - batch_size + 1, batch_size):
                batch = [items[k] for k in order[start : start + batch_size]]
                loss = torch.zeros(())
                for task in tasks:  # one forward per task present in the batch
                    rows = [i for t, i in batch if t == task]
                    if not rows:
                        continue
                    images, labels = data[task]
                    features = backbone(augment(to_input(images[rows], input_size), rng))
                    target = torch.from_numpy(labels[rows])
                    loss = loss + functional.cross_entropy(heads[task](features), target) * len(rows) / batch_size
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
                advance(1)
    report = {"epochs": epochs, "steps": steps, "train_tiles": {t: int(len(data[t][1])) for t in tasks},
              "train_seconds": round(time.perf_counter() - started, 1)}
    return model, report


@torch.inference_mode()
def held_out_accuracy(model: nn.ModuleDict, per_class: int, seed: int, input_size: int | None = None
                      ) -> dict[str, float]:
    model.eval()
    scores = {}
    for task in model["heads"]:
        images, labels = draw_training_tiles(task, per_class, seed)
        logits = torch.cat([model["heads"][task](model["backbone"](to_input(images[i : i + 64], input_size)))
                            for i in range(0, len(images), 64)])
        scores[task] = round(float((logits.argmax(1).numpy() == labels).mean()), 3)
    return scores


def save(model: nn.ModuleDict, out: Path, report: dict, name: str = "synth-reference",
         timm_kwargs: dict | None = None, input_size: int = 224, notes: str | None = None) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model["backbone"].state_dict().items()}
    save_file(state, str(out / "model.safetensors"))
    card = {
        "name": name, "architecture": ARCHITECTURE, "timm_kwargs": timm_kwargs or TIMM_KWARGS,
        "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "input_size": input_size, "interpolation": "bilinear",
        "pooling": "mean-patch", "embed_dim": int(model["backbone"].num_features), "licence": "Apache-2.0",
        "training_data": ["synthetic, other seeds"],
        "training_data_source": "trained on this harness's procedural tiles of other seeds (harness/synth/)",
        "notes": notes or (f"trained by harness/synth/reference_training.py on synthetic tiles of seed {TRAINING_SEED} "
                           f"(tissue, grade, mitosis): {report}"),
    }
    (out / "card.yaml").write_text(yaml.safe_dump(card, sort_keys=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--per-class", type=int, nargs=3, default=[150, 300, 400], metavar=("TISSUE", "GRADE", "MITOSIS"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    model, report = train(dict(zip(TASKS, args.per_class)), args.epochs, args.seed)
    report["held_out_accuracy"] = held_out_accuracy(model, 30, TRAINING_SEED + 1)
    print(report)
    save(model, args.out, report)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
