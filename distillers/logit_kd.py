"""logit_kd: Hinton KD from teachers' task heads into a student head. A teacher's task head is a
linear probe on its embeddings of a labelled dataset's train split; an ensemble is the mean of
the teachers' tempered softmaxes. Loss alpha CE + (1 - alpha) tau^2 KL (without labels: pure KD).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from distillers.losses import hinton_kd_loss


class LogitKD:
    def __init__(self, config, targets, teacher_probs: np.ndarray, labels: np.ndarray | None):
        self.config, self.targets = config, targets
        self.teacher_probs, self.labels = teacher_probs, labels

    def heads(self, student_dim: int) -> nn.ModuleDict:
        return nn.ModuleDict({"classifier": nn.Linear(student_dim, self.teacher_probs.shape[1])})

    def loss(self, heads: nn.ModuleDict, summary: torch.Tensor, index: np.ndarray, labels=None) -> torch.Tensor:
        probs = torch.from_numpy(self.teacher_probs[index])
        y = torch.from_numpy(self.labels[index]) if self.labels is not None else None
        return hinton_kd_loss(heads["classifier"](summary), probs, y, tau=self.config.tau, alpha=self.config.alpha)


def teacher_probabilities(config, targets, fit_embeddings: list[tuple[np.ndarray, np.ndarray]], n_classes: int):
    """Each teacher's task head (a linear probe on its embeddings of the labelled train split),
    applied to the distillation tiles at temperature tau; the ensemble is the mean of softmaxes."""
    from scipy.special import softmax

    from harness.scoring.linear_probe import LinearProbeConfig, fit_linear_probe

    probs = []
    for t, (x, y) in zip(targets, fit_embeddings):
        mean, std = x.mean(0), x.std(0) + 1e-6
        probe = fit_linear_probe((x - mean) / std, y, (x - mean) / std, y, n_classes,
                                 LinearProbeConfig(lr=1e-2, max_steps=500, eval_every=100, patience=500), config.seed)
        probs.append(softmax(probe.predict_logits((t.raw - mean) / std) / config.tau, axis=1))
    return np.mean(probs, axis=0).astype(np.float32)
