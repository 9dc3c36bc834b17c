"""The items most methods train on, and their teachers' targets: the tiles of a dataset's splits
(or of a slide dataset's grid), one in ten held out for fidelity, with each teacher's summary
embedding of every item, cached (computed once through the embedding cache) or online (the
frozen teachers embed each batch's view; here only the held-out items, for fidelity).
"""

from __future__ import annotations

import numpy as np

from harness.distillers.method import DistillationRun, Prepared
from harness.distillers.teachers import TeacherTargets, teacher_targets
from harness.models.model_spec import LoadOptions

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


class TrainTargets:
    """A teacher's targets restricted to the training items (what a loss indexes)."""

    def __init__(self, targets: TeacherTargets, keep: np.ndarray | None):
        self.name, self.weight = targets.name, targets.weight
        self.standardised = None if keep is None else targets.standardised[keep]
        self.dim = targets.standardised.shape[1]


def training_items(run: DistillationRun, online: bool = False, fit_tiles: int = 1024) -> Prepared:
    """Tiles (every split, or those named; a slide dataset's grid tiles) and the teachers' targets."""
    config, source = run.config, run.source
    if source.kind == "slides":
        from harness.distillers.slide_tiles import slide_teacher_targets, slide_tiles

        images, held_out, description = slide_tiles(config, source)
        description["teacher_forward"] = "online" if online else "cached"
        if not online:
            targets = slide_teacher_targets(config.teachers, source, images, run.context, run.extract)
    else:
        splits = config.splits or source.split_names()
        images = JoinedImages([source.images(s) for s in splits])
        held_out = np.arange(0, len(images), HELD_OUT_EVERY)
        description = {"dataset": config.dataset, "splits": splits, "train": len(images) - len(held_out),
                       "held_out": len(held_out), "teacher_forward": "online" if online else "cached"}
        if not online:
            targets = teacher_targets(config.teachers, source, splits, run.context, run.extract,
                                      LoadOptions(device=run.extract.device))
    if not online:
        return Prepared(images, held_out, description, targets)
    teachers, targets = online_teachers(config, images, held_out, fit_tiles, run.extract.device)
    return Prepared(images, held_out, description, targets, online=teachers)


def online_teachers(config, images, held_out: np.ndarray, fit_tiles: int, device: str):
    """Teachers that run on every batch: PHI-S fitted on `fit_tiles` training tiles; their targets
    here are the held-out tiles' (for fidelity)."""
    from harness.distillers.online_teachers import OnlineTeachers

    online = OnlineTeachers(config.teachers, device)
    train_tiles = np.setdiff1d(np.arange(len(images)), held_out)
    fit = np.sort(np.random.default_rng(config.seed).choice(train_tiles, min(fit_tiles, len(train_tiles)),
                                                            replace=False))
    online.fit(images, fit)
    held = online.summaries(images, held_out)
    targets = [TeacherTargets(spec.model, spec.weight, raw=h, standardised=h, n_parameters=n)
               for spec, h, n in zip(config.teachers, held, online.n_parameters)]
    return online, targets
