"""`harness distill`: teacher targets -> the shared training loop -> a student directory.

Distillation data are the tiles of a registry dataset (every split, or those named), or for
cross_magnification the regions of a slide dataset (distillers/cross_magnification.py); one
tile in ten (one slide in ten) is held out of training to measure fidelity (how well the
student's adaptor reproduces each teacher on items it never trained on).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from distillers.config import DistillConfig
from distillers.feature_kd import FeatureKD
from distillers.logit_kd import LogitKD, teacher_probabilities
from distillers.multi_teacher import MultiTeacher
from distillers.student import write_student
from distillers.teachers import TeacherTargets, teacher_targets
from distillers.training_loop import prepare_batch, train
from harness.errors import HarnessError
from harness.models.building import state_dict_sha256
from harness.process_group import rank_and_world
from harness.tile_embedding import ExtractOptions
from harness.models.loading import LoadOptions
from harness.registry import Registry
from harness.sources import DataContext, open_source
from harness.sources.slide_source import SlideSource

HELD_OUT_EVERY = 10


class JoinedImages:
    """The tiles of several splits as one sequence (global index -> split, row)."""

    def __init__(self, parts):
        self.parts = parts
        self.offsets = np.cumsum([0, *(len(p) for p in parts)])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, i: int):
        part = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return self.parts[part][int(i - self.offsets[part])]


class TrainingView:
    """The training tiles only (held-out tiles removed), indexed 0..n_train-1."""

    def __init__(self, images, keep: np.ndarray):
        self.images, self.keep = images, keep

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, i: int):
        return self.images[int(self.keep[i])]


def distill(config: DistillConfig, out_dir: Path, registry: Registry, context: DataContext,
            extract: ExtractOptions, stop_after: int | None = None) -> dict:
    if config.method == "feature_kd" and len(config.teachers) != 1:
        raise HarnessError("method feature_kd takes one teacher; use multi_teacher for several")
    if config.dataset not in registry.datasets:
        raise HarnessError(f"distillation dataset '{config.dataset}' is not in the registry (see `harness list`)")
    source = open_source(config.dataset, registry.datasets[config.dataset], context, registry.datasets)
    source.prepare()
    _refuse_settings_that_cannot_work(config, registry, source)
    regions = online = None
    if config.method == "cross_magnification":
        from distillers.cross_magnification import region_data

        regions = region_data(config, source, context, extract)
        images, targets, held_out, description = regions.images, regions.targets, regions.held_out, regions.description
    elif isinstance(source, SlideSource):  # the tiles of the dataset's slide grid
        from distillers.slide_tiles import slide_teacher_targets, slide_tiles

        images, held_out, description = slide_tiles(config, source)
        if config.teacher_forward == "online":
            online, targets = _online_teachers(config, images, held_out, extract.device)
        else:
            targets = slide_teacher_targets(config.teachers, source, images, context, extract)
    else:
        images, held_out, description = _tiles(config, source)
        if config.teacher_forward == "online":
            online, targets = _online_teachers(config, images, held_out, extract.device)
        else:
            targets = teacher_targets(config.teachers, source, description["splits"], context, extract,
                                      LoadOptions(device=extract.device))
    keep = np.setdiff1d(np.arange(len(images)), held_out)
    # fidelity targets on the held-out items; the method indexes training items 0..n_train-1
    held_out_targets = [t.standardised if online else t.standardised[held_out] for t in targets]
    for t in targets:
        t.train_standardised = None if online else t.standardised[keep]
    method = _method(config, targets, source, registry, context, extract, keep, regions, online)
    outcome = train(config, TrainingView(images, keep), method, out_dir, device=extract.device, stop_after=stop_after)
    record = {"method": config.method, "teachers": [{"model": t.name, "weight": t.weight, "dim": t.raw.shape[1],
                                                     "n_parameters": t.n_parameters} for t in targets],
              "student": config.student, "embed_dim": outcome["dim"], "matryoshka_dims": config.matryoshka_dims,
              "steps": outcome["steps"], "loss_first": outcome["losses"][0] if outcome["losses"] else None,
              "loss_last": float(np.mean(outcome["losses"][-10:])) if outcome["losses"] else None,
              "loss_curve": loss_curve(outcome["losses"], config.checkpoint_every),
              "weights_digest": state_dict_sha256(outcome["student"]), "config": config.model_dump(),
              "distillation_tiles": description}
    _write_rank_digest(out_dir, record["weights_digest"])
    if config.method != "logit_kd":
        record["fidelity"] = fidelity(outcome["modules"], [t.name for t in targets], held_out_targets, images,
                                      held_out, config)
    if stop_after is None or outcome["steps"] >= config.steps:
        write_student(out_dir, outcome["student"], config, outcome["dim"], record)
    return record


def _refuse_settings_that_cannot_work(config: DistillConfig, registry: Registry, source) -> None:
    """Settings that would fail later (or be ignored), refused before any teacher runs."""
    import timm

    if not timm.is_model(config.student):
        raise HarnessError(f"student '{config.student}' is not a timm architecture: pick one from "
                           "timm.list_models(), e.g. vit_tiny_patch16_224 or resnet18")
    if config.method == "logit_kd" and config.label_dataset not in registry.datasets:
        raise HarnessError(f"label_dataset '{config.label_dataset}' is not in the registry (see `harness list`)")
    if config.method == "logit_kd" and config.matryoshka_dims:
        raise HarnessError("matryoshka_dims applies to feature losses; logit_kd trains one classifier head: drop it")
    if config.splits and isinstance(source, SlideSource):
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


def _tiles(config, source):
    """The dataset's tiles (every split, or those named) and the held-out ones (one in ten)."""
    splits = config.splits or source.split_names()
    images = JoinedImages([source.images(s) for s in splits])
    held_out = np.arange(0, len(images), HELD_OUT_EVERY)
    description = {"dataset": config.dataset, "splits": splits, "train": len(images) - len(held_out),
                   "held_out": len(held_out), "teacher_forward": config.teacher_forward}
    return images, held_out, description


def _online_teachers(config, images, held_out, device):
    """Teachers that run on every batch: PHI-S fitted on `fit_tiles` training tiles; their targets
    here are the held-out tiles' (for fidelity)."""
    from distillers.online_teachers import OnlineTeachers

    if config.method not in ("feature_kd", "multi_teacher"):
        raise HarnessError(f"teacher_forward: online is for feature_kd and multi_teacher, not {config.method}")
    online = OnlineTeachers(config.teachers, device)
    train_tiles = np.setdiff1d(np.arange(len(images)), held_out)
    fit = np.sort(np.random.default_rng(config.seed).choice(train_tiles, min(config.fit_tiles, len(train_tiles)),
                                                            replace=False))
    online.fit(images, fit)
    held = online.summaries(images, held_out)
    targets = [TeacherTargets(spec.model, spec.weight, raw=h, standardised=h, n_parameters=n)
               for spec, h, n in zip(config.teachers, held, online.n_parameters)]
    return online, targets


def _method(config, targets, source, registry, context, extract, keep, regions, online):
    if config.method == "cross_magnification":
        from distillers.cross_magnification import CrossMagnification

        return CrossMagnification(config, [_TrainTargets(t) for t in targets], regions.tile_targets,
                                  regions.cells[keep], regions.k)
    if config.method in ("feature_kd", "multi_teacher"):
        view = [_TrainTargets(t) for t in targets]
        return (FeatureKD if config.method == "feature_kd" else MultiTeacher)(config, view, online)
    # logit_kd: teachers' task heads fitted on the labelled dataset's train split
    from harness.embedding_cache import EmbeddingCache
    from harness.tile_embedding import embed_split
    from harness.models.loading import load_encoder

    splits = config.splits or source.split_names()
    load = LoadOptions(device=extract.device)
    labelled = open_source(config.label_dataset, registry.datasets[config.label_dataset], context, registry.datasets)
    labelled.prepare()
    cache = EmbeddingCache(context.cache_dir)
    fit = []
    for spec in config.teachers:
        encoder = load_encoder(spec.model, load)
        x = np.asarray(embed_split(encoder, labelled, labelled.fingerprint(), "train", cache, extract)[0].embeddings)
        fit.append((x, labelled.labels("train")))
    probs = teacher_probabilities(config, targets, fit, len(labelled.class_names()))[keep]
    labels = None
    if not isinstance(source, SlideSource) and all(source.labels(s) is not None for s in splits) \
            and source.class_names() == labelled.class_names():
        labels = np.concatenate([source.labels(s) for s in splits])[keep]
    return LogitKD(config, targets, probs, labels)


class _TrainTargets:
    """A teacher's targets restricted to the training tiles (what the loss indexes)."""

    def __init__(self, targets):
        self.name, self.weight, self.standardised = targets.name, targets.weight, targets.train_standardised
        self.dim = targets.standardised.shape[1]


def fidelity(modules, names: list[str], targets: list[np.ndarray], images, held_out: np.ndarray, config) -> dict:
    """Per teacher, `fidelity_scores` of the student's adaptor output on the held-out items against
    the teacher's standardised target (`targets`, one row per held-out item)."""
    modules.eval()
    with torch.no_grad():
        summaries = torch.cat([modules.student(prepare_batch(images, held_out[i:i + 64], None,
                                                             config.student_input_size))
                               for i in range(0, len(held_out), 64)]).float()
        full = str(summaries.shape[1])
        return {name: fidelity_scores(modules.heads[f"t{i}"][full](summaries[:, :int(full)]).numpy(), target)
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
