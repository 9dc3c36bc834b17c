"""Distillation losses, written from the formulas in docs/protocols.md ("Distillation and students").

feature KD (RADIO / GPFM style), h = the student's adaptor:
    L = (1 - cos(h(s_cls), t_cls)) + lambda * [0.9 (1 - cos) + 0.1 SmoothL1](h(s_patch), resize(t_patch))
Matryoshka: the summary loss also on the first m dims of the student embedding, each nested m
with its own adaptor, averaged.
PHI-S (Ranzinger et al., 2024): teacher targets rotated by their PCA basis and a Hadamard
matrix and scaled by one scalar, so every teacher's targets have (close to) unit variance in
every dimension and no teacher dominates the sum.
Hinton KD: alpha CE(s, y) + (1 - alpha) tau^2 KL(softmax(t / tau) || softmax(s / tau)); the
teacher distribution may be an ensemble's mean of softmaxes.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean over rows of 1 - cos(a_i, b_i); works on (B, D) or (B, N, D)."""
    return (1 - F.cosine_similarity(a, b, dim=-1)).mean()


def patch_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """0.9 (1 - cos) + 0.1 SmoothL1 between (B, N, D) token maps of the same grid."""
    return 0.9 * cosine_distance(student, teacher) + 0.1 * F.smooth_l1_loss(student, teacher)


def resize_tokens(tokens: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, n*n, D) patch tokens -> (B, grid*grid, D) by bilinear interpolation of the token map."""
    b, n_tokens, d = tokens.shape
    side = int(round(math.sqrt(n_tokens)))
    if side == grid:
        return tokens
    grid_map = tokens.transpose(1, 2).reshape(b, d, side, side)
    resized = F.interpolate(grid_map, size=(grid, grid), mode="bilinear", align_corners=False)
    return resized.reshape(b, d, grid * grid).transpose(1, 2)


def matryoshka_loss(embedding: torch.Tensor, target: torch.Tensor, adaptors: dict, dims: list[int]) -> torch.Tensor:
    """Mean over nested m of 1 - cos(adaptor_m(embedding[:, :m]), target)."""
    return torch.stack([cosine_distance(adaptors[str(m)](embedding[:, :m]), target) for m in dims]).mean()


def hinton_kd_loss(student_logits, teacher_probs, labels=None, tau: float = 2.0, alpha: float = 0.5) -> torch.Tensor:
    """alpha CE + (1 - alpha) tau^2 KL(teacher || student) at temperature tau (alpha ignored
    without labels: pure KD). `teacher_probs` are softmax(t / tau), or an ensemble's mean of them."""
    log_student = F.log_softmax(student_logits / tau, dim=-1)
    kd = F.kl_div(log_student, teacher_probs, reduction="batchmean") * tau**2
    if labels is None:
        return kd
    return alpha * F.cross_entropy(student_logits, labels) + (1 - alpha) * kd


def hadamard(n: int) -> np.ndarray:
    """An orthonormal n x n Hadamard-like rotation (Sylvester for powers of 2, else a DCT-II basis,
    which also spreads every axis over all dims)."""
    if n & (n - 1) == 0:
        h = np.array([[1.0]])
        while h.shape[0] < n:
            h = np.block([[h, h], [h, -h]])
        return h / np.sqrt(n)
    k = np.arange(n)
    basis = np.cos(np.pi * (k[:, None] + 0.5) * k[None, :] / n)
    basis[:, 0] /= np.sqrt(2)
    return basis * np.sqrt(2 / n)


class PhiS:
    """PHI-S standardisation of one teacher's targets: x -> (x - mu) U H / alpha, where U is the
    PCA basis, H a Hadamard rotation (equalises the variance across dims) and alpha one scalar
    (the root of the mean eigenvalue): the Hadamard rotation gives every dim the mean eigenvalue
    as its variance, so after the scalar every dim has unit variance."""

    def __init__(self, targets: np.ndarray):
        x = np.asarray(targets, dtype=np.float64)
        self.mean = x.mean(axis=0)
        eigenvalues, basis = np.linalg.eigh(np.cov(x - self.mean, rowvar=False))
        self.rotation = basis @ hadamard(x.shape[1])
        self.scale = float(np.sqrt(max(eigenvalues.clip(min=0).mean(), 1e-12)))

    def __call__(self, targets: np.ndarray) -> np.ndarray:
        return ((np.asarray(targets, dtype=np.float64) - self.mean) @ self.rotation / self.scale).astype(np.float32)

    def on_tensor(self, targets: torch.Tensor) -> torch.Tensor:
        """The same map on a float tensor, on its device (no copy to numpy: used every training step)."""
        mean = torch.as_tensor(self.mean, dtype=torch.float32, device=targets.device)
        rotation = torch.as_tensor(self.rotation, dtype=torch.float32, device=targets.device)
        return (targets.float() - mean) @ rotation / self.scale
