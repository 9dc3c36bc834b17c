"""The one training loop every distiller uses.

AdamW with linear warm-up then cosine decay, gradient clipping, bf16 autocast and channels_last
on CUDA (CPU in tests), a checkpoint every `checkpoint_every` steps that a rerun resumes from
(step, student, heads, optimiser and schedule; loaded with weights_only=True). Batches are drawn
from (seed, step), so a resumed run sees exactly the batches an uninterrupted one would. At each
checkpoint the loop can also measure the same objective on the held-out items (`held_out`: a
callable on the modules; no augmentation, no jitter, no gradient): the curve that says whether
more steps would still improve the student on items it never trained on. The
checkpoint records the settings it was trained with and each teacher's targets for its first items
(`teacher_rows`); a rerun with other settings (another teacher, lr, step count...), or whose
teachers now embed those items otherwise (their weights or the data changed under the same
names), is refused rather than continued from it.
Under torchrun (WORLD_SIZE > 1) the student and heads are wrapped in DistributedDataParallel
(gloo on CPU); each rank takes its share of every batch and rank 0 writes the checkpoints.
"""

from __future__ import annotations

import json
import math
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel
from rich.markup import escape
from torch import nn

from harness.atomic_write import atomic_path
from harness.errors import HarnessError
from harness.models.card import IMAGENET_MEAN, IMAGENET_STD
from harness.distillers.student import student_timm_kwargs
from harness.distillers.view_jitter import jitter_draws, jittered
from harness.models.encoder import PooledBackbone
from harness.process_group import barrier, rank_and_world
from harness.progress import progress_bar
from harness.terminal import console


def build_student(architecture: str, input_size: int, seed: int, extra: dict | None = None) -> PooledBackbone:
    """The student, from scratch: timm's `architecture` with `extra` (the config's student_kwargs)."""
    import timm

    torch.manual_seed(seed)
    kwargs = student_timm_kwargs(architecture, input_size, extra)
    try:
        model = timm.create_model(architecture, pretrained=False, num_classes=0, **kwargs)
    except (TypeError, ValueError, AssertionError, IndexError, RuntimeError, MemoryError) as error:
        raise HarnessError(f"student {architecture} with student_kwargs {extra}: timm cannot build it "
                           f"({type(error).__name__}: {str(error)[:160]}); check the keys against the "
                           "architecture's constructor") from None
    return PooledBackbone(model, "cls")


class StudentWithHeads(nn.Module):
    """Student + the method's heads: forward(images, item indices, augmentation codes) -> the
    method's loss. A method with `uses_patch_grid` also gets the student's spatial token map
    (B, D, h, w) and the codes, to orient its spatial targets like the student's input."""

    def __init__(self, student: PooledBackbone, heads: nn.ModuleDict, method):
        super().__init__()
        self.student, self.heads, self.method = student, heads, method

    def forward(self, images: torch.Tensor, index: np.ndarray, codes: np.ndarray | None = None,
                method=None) -> torch.Tensor:
        """The loss of `method` (default: the training one; the held-out items have their own)."""
        method = method or self.method
        tokens = self.student.backbone.forward_features(images)
        summary = self.student.pool(tokens).float()
        if method.uses_patch_grid:
            return method.loss(self.heads, summary, index, grid=self.student.patch_grid(tokens).float(), codes=codes)
        return method.loss(self.heads, summary, index)


def schedule(warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def batch_of(seed: int, step: int, n_items: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(tile indices, per-tile augmentation codes 0..7: rot90 k and flip) of one step."""
    rng = np.random.default_rng([seed, step])
    size = min(batch_size, n_items)  # a batch larger than the data is the whole data, once
    return rng.choice(n_items, size=size, replace=False), rng.integers(0, 8, size)


def orient(grid: torch.Tensor, code: int) -> torch.Tensor:
    """Augmentation code 0..7 applied to a (C, H, W) image or token map: rot90 by code % 4, then a
    horizontal flip when code >= 4."""
    rotated = torch.rot90(grid, int(code) % 4, dims=(1, 2))
    return rotated.flip(2) if code >= 4 else rotated


def oriented_tiles(images, index: np.ndarray, codes: np.ndarray | None) -> torch.Tensor:
    """uint8 tiles -> (B, 3, H, W) float in [0, 1] at their own size, rotated/flipped by `codes`."""
    x = torch.from_numpy(np.stack([np.asarray(images[int(i)]) for i in index])).permute(0, 3, 1, 2).float() / 255
    if codes is not None:
        x = torch.stack([orient(t, c) for t, c in zip(x, codes)])
    return x


def model_input(x: torch.Tensor, size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> resized to `size` and normalised for one network."""
    if x.shape[-1] != size:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                                            align_corners=False)
    mean, std = (torch.tensor(v, dtype=x.dtype, device=x.device).view(1, 3, 1, 1) for v in (mean, std))
    return (x - mean) / std  # on x's device: an online teacher's input is already on the GPU


def prepare_batch(images, index: np.ndarray, codes: np.ndarray | None, size: int) -> torch.Tensor:
    """uint8 tiles -> (B, 3, size, size) normalised float, optionally rotated/flipped."""
    return model_input(oriented_tiles(images, index, codes), size)


def train(config, images, method, out_dir: Path, device: str = "cpu", stop_after: int | None = None,
          held_out=None, teachers: dict[str, np.ndarray] | None = None) -> dict:
    """Train student + heads; returns {"student": PooledBackbone, "losses": [...], "steps": n,
    "held_out_curve": [{"step", "loss"}, ...]}. `stop_after` ends the run early after that many
    steps (checkpointed), as an interruption would. `held_out(modules) -> float`, when given, is
    measured at every checkpoint (rank 0) and kept in the checkpoint with the losses. `teachers`:
    each teacher's targets for its first items (`teacher_rows`), kept in the checkpoint and
    compared before resuming from one."""
    rank, world = rank_and_world()
    distributed = world > 1
    student = build_student(config.student, config.student_input_size, config.seed, config.student_kwargs)
    with torch.no_grad():
        dim = student(torch.zeros(1, 3, config.student_input_size, config.student_input_size)).shape[1]
    torch.manual_seed(config.seed + 1)
    modules = StudentWithHeads(student, method.heads(dim), method).to(device)
    if device.startswith("cuda"):
        modules = modules.to(memory_format=torch.channels_last)
    optimiser = torch.optim.AdamW(modules.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule(config.warmup_steps, config.steps))
    state_path = Path(out_dir) / "checkpoint" / "state.pt"
    start, losses, curve = 0, [], []
    if state_path.exists():
        state = _load_state(state_path, config, device, teachers)
        try:
            modules.load_state_dict(state["modules"])
        except RuntimeError as error:  # heads of another shape: what the checks above did not foresee
            first = str(error).strip().splitlines()[-1].strip()[:200]
            raise HarnessError(f"{state_path}: a checkpoint of another distillation ({first}): use another "
                               f"--output, or delete {state_path.parent} to start over") from None
        optimiser.load_state_dict(state["optimiser"])
        scheduler.load_state_dict(state["scheduler"])
        start, losses = int(state["step"]), [float(v) for v in state["losses"]]
        curve = [{"step": int(step), "loss": float(loss)} for step, loss in state.get("held_out", [])]
        if rank == 0:
            console.print(f"resuming from {escape(str(state_path))}: step {start} of {config.steps}")
    model = nn.parallel.DistributedDataParallel(modules) if distributed else modules
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else nullcontext()
    modules.train()
    end = config.steps if stop_after is None else min(config.steps, start + stop_after)
    with progress_bar(f"distilling {config.student} ({config.method})", config.steps, unit="steps") as advance:
        advance(start)
        for step in range(start, end):
            index, codes = batch_of(config.seed, step, len(images), config.batch_size)
            mine = slice(rank, None, world)  # this rank's share of the batch
            # the tiles cross to the device once; resizing and normalising happen there
            tiles = oriented_tiles(images, index[mine], codes[mine] if config.augment else None).to(device)
            if method.observes_batches:  # online teachers embed this very view (no_grad), un-jittered
                method.observe(tiles)
            if config.jitter.active:  # the student alone sees a colour/optics-jittered copy
                draws = jitter_draws(config.jitter, config.seed, step, len(index))  # the whole batch's
                tiles = jittered(tiles, config.jitter, {key: value[mine] for key, value in draws.items()})
            x = model_input(tiles, config.student_input_size)
            with autocast:
                loss = model(x, index[mine], codes[mine] if config.augment else None)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()  # DDP averages the gradients across ranks here
            nn.utils.clip_grad_norm_(modules.parameters(), config.grad_clip)
            optimiser.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            if not math.isfinite(losses[-1]):  # before a checkpoint could keep the broken weights
                kept = max(start, step // config.checkpoint_every * config.checkpoint_every)
                raise HarnessError(
                    f"{out_dir}: the distillation loss is {losses[-1]} at step {step + 1} (lr {config.lr:g}): the "
                    "student is not written" + (f" and its checkpoint of step {kept} is kept" if kept else "")
                    + "; lower lr, or check the teachers' targets")
            advance(1)
            if rank == 0 and ((step + 1) % config.checkpoint_every == 0 or step + 1 == end):
                measured = ""
                regular = (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps
                if held_out is not None and regular:  # not where an interruption stops: a resumed curve = a whole one
                    curve.append({"step": step + 1, "loss": held_out(modules)})
                    measured = f"  held-out {curve[-1]['loss']:.4f}"
                save_state(state_path, modules, optimiser, scheduler, step + 1, losses, config, curve, teachers)
                recent = losses[-config.checkpoint_every:]
                console.print(f"step {step + 1}/{config.steps}  loss {np.mean(recent):.4f} "
                              f"(mean of the last {len(recent)}){measured}  lr {scheduler.get_last_lr()[0]:.2e}")
    barrier()
    return {"student": student, "modules": modules, "losses": losses, "steps": end, "dim": dim,
            "held_out_curve": curve}


def training_settings(config) -> dict:
    """What a checkpoint must agree on to be resumed (not how often it is written, nor the name)."""
    return config.model_dump(mode="json", exclude={"checkpoint_every", "name"})


TEACHER_ROWS = 64  # items whose targets a checkpoint keeps per teacher
SAME_TARGETS = 0.99  # mean cosine above which a teacher's targets are its own, recomputed (bf16, another device)


def teacher_rows(targets) -> dict[str, np.ndarray]:
    """Each teacher's targets (raw, as it embeds them) for the first TEACHER_ROWS items, keyed by its
    place and name: what a resumed run's teachers must give again."""
    return {f"{i}:{t.name}": np.asarray(t.raw[:TEACHER_ROWS], dtype=np.float32) for i, t in enumerate(targets)}


def save_state(path: Path, modules, optimiser, scheduler, step: int, losses: list[float], config,
               held_out: list[dict] = (), teachers: dict[str, np.ndarray] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save({"modules": modules.state_dict(), "optimiser": optimiser.state_dict(),
                    "scheduler": scheduler.state_dict(), "step": torch.tensor(step),
                    "losses": torch.tensor(losses, dtype=torch.float64),
                    "held_out": torch.tensor([[p["step"], p["loss"]] for p in held_out],
                                             dtype=torch.float64).reshape(-1, 2),
                    "settings": json.dumps(training_settings(config), sort_keys=True),
                    "teacher_rows": {key: torch.from_numpy(rows) for key, rows in (teachers or {}).items()}}, tmp)


def _load_state(path: Path, config, device: str, teachers: dict[str, np.ndarray] | None = None) -> dict:
    """The checkpoint to resume from, if it belongs to this very distillation."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        saved = json.loads(state["settings"])
    except Exception as error:  # noqa: BLE001 - truncated, corrupt, or not ours: the file is left alone
        raise HarnessError(f"{path}: cannot resume from this checkpoint ({type(error).__name__}): delete "
                           f"{path.parent} to start over") from None
    now = training_settings(config)
    for key in now.keys() - saved.keys():  # a setting added since the checkpoint was written: its default then
        field = type(config).model_fields.get(key)
        default = field.get_default(call_default_factory=True) if field is not None else None
        saved[key] = default.model_dump(mode="json") if isinstance(default, BaseModel) else default
    changed = sorted(key for key in saved.keys() | now.keys() if saved.get(key) != now.get(key))
    if changed:
        raise HarnessError(f"{path}: a checkpoint of another distillation (different {', '.join(changed)}): "
                           f"use another --output, or delete {path.parent} to start over")
    kept = state.get("teacher_rows") or {}
    if not (isinstance(kept, dict) and all(isinstance(key, str) and isinstance(rows, torch.Tensor) and rows.ndim == 2
                                           and rows.is_floating_point() for key, rows in kept.items())):
        raise HarnessError(f"{path}: cannot resume from this checkpoint (its teachers' targets are not one table "
                           f"per teacher): delete {path.parent} to start over")
    other = _other_teacher_targets(kept, teachers or {})
    if other:
        raise HarnessError(f"{path}: a checkpoint of another distillation ({other}: the teacher's weights or the "
                           f"data changed under the same names): use another --output, or delete {path.parent} "
                           "to start over")
    return state


def _other_teacher_targets(saved: dict, now: dict[str, np.ndarray]) -> str | None:
    """How the teachers' targets now differ from a checkpoint's, or None (a checkpoint written
    before it kept them cannot tell)."""
    if not saved or not now:
        return None
    for key, rows in now.items():
        name = key.partition(":")[2]
        if key not in saved:
            return f"teacher {name} was not one of its teachers"
        before = saved[key].cpu().numpy().astype(np.float64)
        if before.shape[1] != rows.shape[1]:
            return f"teacher {name} gives {rows.shape[1]} dims, the checkpoint's {before.shape[1]}"
        n = min(len(before), len(rows))
        a, b = before[:n], rows[:n].astype(np.float64)
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        cosine = float(np.mean(np.where(norms > 0, (a * b).sum(1) / np.maximum(norms, 1e-30),
                                        np.all(a == b, axis=1).astype(np.float64))))
        if n and cosine < SAME_TARGETS:
            return f"teacher {name}'s targets for the first {n} items are not the checkpoint's (mean cosine {cosine:.3f})"
    return None


