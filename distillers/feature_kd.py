"""feature_kd: one teacher; an adaptor MLP maps the student's summary token to the teacher's
(PHI-S standardised) summary embedding; loss 1 - cos, also on the first m dims for each nested
Matryoshka m (an adaptor per m). With cached teacher summaries (teacher_forward: cached) that is
all (CLS-only mode); with online teachers (distillers/online_teachers.py) the patch-token term
0.9 (1 - cos) + 0.1 SmoothL1 against the teacher's token map resized to the student's grid is
added, weighted by patch_weight. Other methods build on these heads and this loss.

multi_teacher is the same loss over several teachers, summed with their weights, each target PHI-S
standardised so that no teacher dominates (distillers/teachers.py); feature_kd takes one.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from harness.distillers.losses import matryoshka_loss, patch_loss, resize_tokens
from harness.distillers.method import DistillationMethod, DistillationRun, Prepared, register_method
from harness.distillers.training_items import TrainTargets, training_items
from harness.errors import HarnessError


class FeatureKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # nested dims, e.g. [32, 64, 128], each below the student's embedding dim; [] = off
    matryoshka_dims: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list)
    adaptor_hidden: int = Field(256, ge=1)
    # cached: teacher summary embeddings computed once (through the embedding cache) and reused for
    #         every view of a tile; CLS-only. online: the frozen teachers embed each batch's view,
    #         and the patch-token term is trained too (not with instruments)
    teacher_forward: Literal["cached", "online"] = "cached"
    fit_tiles: int = Field(1024, ge=1)  # online: training tiles the teachers' PHI-S statistics are fitted on
    patch_weight: float = Field(1.0, ge=0)  # lambda of the patch-token term (online)


def nested_dims(matryoshka: list[int], full: int) -> list[int]:
    """The nested prefixes the loss is applied to: the Matryoshka dims and always the full one."""
    return sorted({*(m for m in matryoshka if m < full), full})


def adaptor(d_in: int, d_out: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))


@register_method
class FeatureKD(DistillationMethod):
    """Summary loss (Matryoshka over nested dims) against each teacher's target; with online teachers
    and patch_weight > 0 also the patch-token term: an adaptor per teacher on the student's patch
    tokens against the teacher's token map resized to the student's grid."""

    name = "feature_kd"
    Params = FeatureKDParams

    @classmethod
    def prepare(cls, run: DistillationRun) -> Prepared:
        params = run.config.method_params
        return training_items(run, online=params.teacher_forward == "online", fit_tiles=params.fit_tiles)

    @classmethod
    def nested_dims(cls, params) -> list[int]:
        return list(params.matryoshka_dims)

    @classmethod
    def build(cls, run: DistillationRun, prepared: Prepared, keep: np.ndarray) -> "FeatureKD":
        keep_rows = None if prepared.online else keep  # online targets are the held-out items' only
        return cls(run.config, [TrainTargets(t, keep_rows) for t in prepared.targets], prepared.online)

    def __init__(self, config, targets, online=None):
        self.config, self.targets, self.online = config, targets, online
        self.params = config.method_params
        self.patch_term = online is not None and self.params.patch_weight > 0
        self.uses_patch_grid = self.patch_term  # the loop then hands loss() the student's token map
        self.observes_batches = online is not None
        self._views = None  # the online teachers' view of the current batch

    def heads(self, student_dim: int) -> nn.ModuleDict:
        too_large = [m for m in self.params.matryoshka_dims if m > student_dim]
        if too_large:
            raise HarnessError(f"matryoshka_dims {too_large}: larger than the {self.config.student} student's "
                               f"{student_dim}-d embedding")
        dims = nested_dims(self.params.matryoshka_dims, student_dim)
        heads = nn.ModuleDict({
            f"t{i}": nn.ModuleDict({str(m): adaptor(m, t.dim, self.params.adaptor_hidden) for m in dims})
            for i, t in enumerate(self.targets)
        })
        if self.patch_term:
            for i, dim in enumerate(self.online.patch_dims):
                heads[f"p{i}"] = adaptor(student_dim, dim, self.params.adaptor_hidden)
        return heads

    def observe(self, tiles: torch.Tensor) -> None:
        """Online teachers: embed this step's view (called by the loop before the student's forward)."""
        if self.online is not None:
            self._views = self.online(tiles)

    def batch_targets(self, index: np.ndarray, device: torch.device) -> list[torch.Tensor]:
        """This batch's standardised teacher embeddings, on the student's device."""
        if self.online is not None:
            return [view.summary.to(device) for view in self._views]
        return [torch.from_numpy(t.standardised[index]).to(device) for t in self.targets]

    def loss(self, heads: nn.ModuleDict, summary: torch.Tensor, index: np.ndarray, grid=None, codes=None) -> torch.Tensor:
        dims = nested_dims(self.params.matryoshka_dims, summary.shape[1])
        total = sum(t.weight for t in self.targets)
        parts = [t.weight / total * matryoshka_loss(summary, target, heads[f"t{i}"], dims)
                 for i, (t, target) in enumerate(zip(self.targets, self.batch_targets(index, summary.device)))]
        if grid is not None and self.patch_term:
            tokens = grid.flatten(2).transpose(1, 2)  # (B, h*w, D)
            for i, (t, view) in enumerate(zip(self.targets, self._views)):
                target = resize_tokens(view.patches, grid.shape[-1])
                parts.append(t.weight / total * self.params.patch_weight * patch_loss(heads[f"p{i}"](tokens), target))
        return torch.stack(parts).sum()


@register_method
class MultiTeacher(FeatureKD):
    """feature_kd's loss over one or more teachers (an adaptor per teacher, losses weighted)."""

    name = "multi_teacher"
    teachers = "several"
