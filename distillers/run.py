"""`harness distill`: teacher targets -> the shared training loop -> a student directory.

Distillation data are the tiles of a registry dataset (every split, or those named), or for
cross_magnification the regions of a slide dataset (distillers/cross_magnification.py); one
tile in ten (one slide in ten) is held out of training to measure fidelity (how well the
student's adaptor reproduces each teacher on items it never trained on) and, at every checkpoint,
the training objective on those items (`held_out_curve`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from harness.distillers.config import DistillConfig
from harness.distillers.method import METHODS, DistillationRun
from harness.distillers.student import write_student
from harness.distillers.training_loop import build_student, prepare_batch, teacher_rows, train
from harness.errors import HarnessError
from harness.models.building import state_dict_sha256
from harness.models.card import DEFAULT_MAX_PARAMETERS
from harness.process_group import rank_and_world
from harness.tile_embedding import ExtractOptions
from harness.registry import Registry
from harness.sources import DataContext, open_source


class TrainingView:
    """The training items only (held-out items removed), indexed 0..n_train-1."""

    def __init__(self, images, keep: np.ndarray):
        self.images, self.keep = images, keep

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, i: int):
        return self.images[int(self.keep[i])]


def distill(config: DistillConfig, out_dir: Path, registry: Registry, context: DataContext,
            extract: ExtractOptions, stop_after: int | None = None) -> dict:
    method = METHODS[config.method]
    if method.teachers == "one" and len(config.teachers) != 1:
        several = [name for name, m in METHODS.items() if m.teachers == "several"]
        raise HarnessError(f"method {config.method} takes one teacher; {', '.join(several)} take several")
    if config.dataset not in registry.datasets:
        raise HarnessError(f"distillation dataset '{config.dataset}' is not in the registry (see `harness list`)")
    source = open_source(config.dataset, registry.datasets[config.dataset], context, registry.datasets)
    source.prepare()
    _refuse_settings_that_cannot_work(config, source)
    run = DistillationRun(config, registry, context, extract, source)
    prepared = method.prepare(run)
    images, held_out = prepared.images, prepared.held_out
    keep = np.setdiff1d(np.arange(len(images)), held_out)
    # fidelity targets on the held-out items (online teachers embedded only those)
    held_out_targets = [t.standardised if prepared.online else t.standardised[held_out] for t in prepared.targets]
    loss = method.build(run, prepared, keep)
    outcome = train(config, TrainingView(images, keep), loss, out_dir, device=extract.device, stop_after=stop_after,
                    held_out=held_out_objective(method, run, prepared, config), teachers=teacher_rows(prepared.targets))
    record = {"method": config.method, "teachers": [{"model": t.name, "weight": t.weight, "dim": t.raw.shape[1],
                                                     "n_parameters": t.n_parameters} for t in prepared.targets],
              "student": config.student, "embed_dim": outcome["dim"],
              "matryoshka_dims": method.nested_dims(config.method_params),
              "steps": outcome["steps"], "loss_first": outcome["losses"][0] if outcome["losses"] else None,
              "loss_last": float(np.mean(outcome["losses"][-10:])) if outcome["losses"] else None,
              "loss_curve": loss_curve(outcome["losses"], config.checkpoint_every),
              "held_out_curve": outcome["held_out_curve"],
              "weights_digest": state_dict_sha256(outcome["student"]), "config": config.model_dump(),
              "distillation_tiles": prepared.description}
    _write_rank_digest(out_dir, record["weights_digest"])
    if method.fidelity:
        record["fidelity"] = fidelity(outcome["modules"], [t.name for t in prepared.targets], held_out_targets,
                                      images, held_out, config)
    if stop_after is None or outcome["steps"] >= config.steps:
        card = {**method.card(config.method_params), **student_training_data(config, registry)}
        write_student(out_dir, outcome["student"], config, outcome["dim"], record, card)
    return record


def student_training_data(config: DistillConfig, registry: Registry) -> dict:
    """What the student's card declares it learned from: the distillation images' collections and
    everything its teachers declare (a teacher's training data reaches the student through its
    outputs). Empty (unknown) when the dataset or a teacher does not declare it."""
    from harness.models.model_spec import resolve_model

    declared = getattr(registry.datasets[config.dataset], "image_sources", None)  # a plugin schema may lack it
    if declared is None:
        return {}
    collected = set(declared)
    for teacher in config.teachers:
        if teacher.random_init:
            continue
        spec = resolve_model(teacher.model)
        if spec.source == "instrument":
            continue
        if spec.card is None or spec.card.training_data is None:
            return {}
        collected |= set(spec.card.training_data)
    return {"training_data": sorted(collected),
            "training_data_source": f"distilled by pathology-harness on {config.dataset} from "
                                    + ", ".join(t.model for t in config.teachers) + " (their declared training data)"}


def _refuse_settings_that_cannot_work(config: DistillConfig, source) -> None:
    """Settings that would fail later (or be ignored), refused before any teacher runs."""
    import timm

    if not timm.is_model(config.student):
        raise HarnessError(f"student '{config.student}' is not a timm architecture: pick one from "
                           "timm.list_models(), e.g. vit_tiny_patch16_224 or resnet18")
    config.method_params  # noqa: B018 - a bad method setting is refused here, naming its key
    with torch.device("meta"):  # a student timm cannot build (e.g. a wrong student_kwargs key), without allocating
        student = build_student(config.student, config.student_input_size, config.seed, config.student_kwargs)
    size = sum(p.numel() for p in student.parameters())
    if size > DEFAULT_MAX_PARAMETERS:  # student_kwargs such as embed_dim: 30000 would take the machine's memory
        raise HarnessError(f"student {config.student} with student_kwargs {config.student_kwargs}: {size:,} parameters, "
                           f"more than the {DEFAULT_MAX_PARAMETERS:,} a scored model may have; a student is smaller "
                           "than its teachers: check student_kwargs")
    if config.splits and source.kind == "slides":
        raise HarnessError(f"dataset '{config.dataset}' is a slide dataset: its slides are the data, it has no "
                           "splits to pick; drop splits")
    if config.splits:
        unknown = [s for s in config.splits if s not in source.split_names()]
        if unknown:
            raise HarnessError(f"dataset '{config.dataset}' has no split {', '.join(unknown)} "
                               f"(its splits: {', '.join(source.split_names())})")


def loss_curve(losses: list[float], every: int) -> list[dict]:
    """Mean loss over each stretch of `every` steps: [{"step": last step, "loss": mean}, ...]."""
    return [{"step": min(i + every, len(losses)), "loss": float(np.mean(losses[i:i + every]))}
            for i in range(0, len(losses), every)]


def held_out_batches(modules, images, held_out: np.ndarray, config, size: int = 64):
    """The held-out items as the student reads them, unaugmented, in batches on the modules' device
    (where training left them): (positions among `held_out`, input tensor)."""
    device = next(modules.parameters()).device
    for start in range(0, len(held_out), size):
        rows = np.arange(start, min(start + size, len(held_out)))
        yield rows, prepare_batch(images, held_out[rows], None, config.student_input_size).to(device)


def held_out_objective(method, run, prepared, config):
    """The training loss on the held-out items, as a callable on the modules (eval mode, no
    gradient, no augmentation or jitter: each item as it is), or None where there is none to
    measure: a method without adaptors to the teachers (logit_kd), online teachers (their targets
    follow the training views), no held-out items."""
    held_out = prepared.held_out
    if not method.fidelity or prepared.online is not None or len(held_out) == 0:
        return None
    objective = method.build(run, prepared, held_out)  # indexes the held-out items 0..n-1
    images = prepared.images

    def measure(modules) -> float:
        was_training = modules.training
        modules.eval()
        with torch.no_grad():
            total = sum(float(modules(x, rows, None, method=objective)) * len(rows)
                        for rows, x in held_out_batches(modules, images, held_out, config))
        modules.train(was_training)
        return total / len(held_out)

    return measure


def fidelity(modules, names: list[str], targets: list[np.ndarray], images, held_out: np.ndarray, config) -> dict:
    """Per teacher, `fidelity_scores` of the student's adaptor output on the held-out items against
    the teacher's standardised target (`targets`, one row per held-out item)."""
    modules.eval()
    with torch.no_grad():
        summaries = torch.cat([modules.student(x) for _, x in held_out_batches(modules, images, held_out, config)]).float()
        full = str(summaries.shape[1])
        return {name: fidelity_scores(modules.heads[f"t{i}"][full](summaries[:, :int(full)]).float().cpu().numpy(),
                                      target)
                for i, (name, target) in enumerate(zip(names, targets))}


def fidelity_scores(predicted: np.ndarray, target: np.ndarray) -> dict:
    """1 - mean cosine, and Var(target) / MSE (higher is better). The summary losses (1 - cos) train
    the direction only, so the prediction is first put on the target's scale by one least-squares
    scalar s = <p, t> / <p, p> over all items; s = 0 is allowed, so on zero-mean targets a prediction
    that carries nothing scores 1."""
    predicted, target = predicted.astype(np.float64), target.astype(np.float64)
    cosine = np.sum(predicted * target, 1) / (np.linalg.norm(predicted, axis=1) * np.linalg.norm(target, axis=1)
                                              + 1e-12)
    scale = np.sum(predicted * target) / max(float(np.sum(predicted * predicted)), 1e-12)
    mse = float(np.mean((scale * predicted - target) ** 2))
    return {"one_minus_mean_cosine": float(1 - cosine.mean()),
            "variance_over_mse": float(target.var(axis=0).mean() / max(mse, 1e-12))}


def _write_rank_digest(out_dir: Path, digest: str) -> None:
    """Under torchrun each rank records the digest of its final weights (they must agree)."""
    rank, world = rank_and_world()
    if world > 1:
        path = Path(out_dir) / "checkpoint" / f"weights-rank{rank}.sha256"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(digest)
