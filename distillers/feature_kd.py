"""feature_kd: one teacher; an adaptor MLP maps the student's summary token to the teacher's
(PHI-S standardised) summary embedding; loss 1 - cos, also on the first m dims for each nested
Matryoshka m (an adaptor per m). With cached teacher summaries (teacher_forward: cached) that is
all (CLS-only mode); with online teachers (distillers/online_teachers.py) the patch-token term
0.9 (1 - cos) + 0.1 SmoothL1 against the teacher's token map resized to the student's grid is
added, weighted by patch_weight. Other methods build on these heads and this loss.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from distillers.losses import matryoshka_loss, patch_loss, resize_tokens
from harness.errors import HarnessError


def nested_dims(matryoshka: list[int], full: int) -> list[int]:
    """The nested prefixes the loss is applied to: the Matryoshka dims and always the full one."""
    return sorted({*(m for m in matryoshka if m < full), full})


def adaptor(d_in: int, d_out: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))


class FeatureKD:
    """Summary loss (Matryoshka over nested dims) against each teacher's target; with online teachers
    and patch_weight > 0 also the patch-token term: an adaptor per teacher on the student's patch
    tokens against the teacher's token map resized to the student's grid."""

    def __init__(self, config, targets, online=None):
        self.config, self.targets, self.online = config, targets, online
        self.patch_term = online is not None and config.patch_weight > 0
        self.uses_patch_grid = self.patch_term  # the loop then hands loss() the student's token map
        self._views = None  # the online teachers' view of the current batch

    def heads(self, student_dim: int) -> nn.ModuleDict:
        too_large = [m for m in self.config.matryoshka_dims if m > student_dim]
        if too_large:
            raise HarnessError(f"matryoshka_dims {too_large}: larger than the {self.config.student} student's "
                               f"{student_dim}-d embedding")
        dims = nested_dims(self.config.matryoshka_dims, student_dim)
        heads = nn.ModuleDict({
            f"t{i}": nn.ModuleDict({str(m): adaptor(m, t.dim, self.config.adaptor_hidden) for m in dims})
            for i, t in enumerate(self.targets)
        })
        if self.patch_term:
            for i, dim in enumerate(self.online.patch_dims):
                heads[f"p{i}"] = adaptor(student_dim, dim, self.config.adaptor_hidden)
        return heads

    def observe(self, tiles: torch.Tensor) -> None:
        """Online teachers: embed this step's view (called by the loop before the student's forward)."""
        if self.online is not None:
            self._views = self.online(tiles)

    def batch_targets(self, index: np.ndarray) -> list[torch.Tensor]:
        if self.online is not None:
            return [view.summary for view in self._views]
        return [torch.from_numpy(t.standardised[index]) for t in self.targets]

    def loss(self, heads: nn.ModuleDict, summary: torch.Tensor, index: np.ndarray, grid=None, codes=None) -> torch.Tensor:
        dims = nested_dims(self.config.matryoshka_dims, summary.shape[1])
        total = sum(t.weight for t in self.targets)
        parts = [t.weight / total * matryoshka_loss(summary, target, heads[f"t{i}"], dims)
                 for i, (t, target) in enumerate(zip(self.targets, self.batch_targets(index)))]
        if grid is not None and self.patch_term:
            tokens = grid.flatten(2).transpose(1, 2)  # (B, h*w, D)
            for i, (t, view) in enumerate(zip(self.targets, self._views)):
                target = resize_tokens(view.patches, grid.shape[-1])
                parts.append(t.weight / total * self.config.patch_weight * patch_loss(heads[f"p{i}"](tokens), target))
        return torch.stack(parts).sum()
