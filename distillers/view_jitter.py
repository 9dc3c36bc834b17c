"""Colour and optics jitter of the student's view (the teachers' targets stay the clean tile's).

A student that matches its teacher's embedding of a tile from a jittered copy of that tile learns
to ignore the jitter: the mechanism behind a student that is more stain-robust than its teacher
(H0-mini, distilled with colour-augmented student views, scores higher on PLISM than its teacher).
Three jitters, each off at 0, drawn per tile from (seed, step) so a resumed run sees the same views:

  stain  HED jitter (Tellez et al. 2019): each stain's optical density scaled by U(1 - s, 1 + s)
         and shifted by U(-s, s) in Ruifrok & Johnston's HED space; 0.05 is their "HED-light",
         0.2 their "HED-strong". The same arithmetic as harness.perturbations.hed_jitter.
  gamma  a tone curve x ** g with log g ~ U(-log(1 + t), log(1 + t)) (a scanner's tone curve).
  blur   a Gaussian of sigma ~ U(0, b) px (a scanner's focus), applied per tile.

The jitter runs on the batch's device, on (B, 3, H, W) images in [0, 1].
"""

from __future__ import annotations

import math

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from harness.perturbations import HED_FROM_RGB, RGB_FROM_HED


class ViewJitter(BaseModel):
    """`jitter:` in a distillation config; every key 0 (the default) is no jitter."""

    model_config = ConfigDict(extra="forbid")

    stain: float = Field(0.0, ge=0.0, le=0.5)  # HED scale/shift half-width (0.05 light, 0.2 strong)
    gamma: float = Field(0.0, ge=0.0, le=1.0)  # tone curve exponent within [1 / (1 + t), 1 + t]
    blur: float = Field(0.0, ge=0.0, le=4.0)  # Gaussian blur sigma up to this many px

    @property
    def active(self) -> bool:
        return bool(self.stain or self.gamma or self.blur)


def jitter_draws(jitter: ViewJitter, seed: int, step: int, n: int) -> dict[str, np.ndarray]:
    """Per-tile parameters of one step: (n, 3) stain scales and shifts, (n,) gammas and blur sigmas."""
    rng = np.random.default_rng([seed, step, 7])
    s = jitter.stain
    log_gamma = math.log1p(jitter.gamma)
    return {"alpha": rng.uniform(1 - s, 1 + s, (n, 3)), "beta": rng.uniform(-s, s, (n, 3)),
            "gamma": np.exp(rng.uniform(-log_gamma, log_gamma, n)), "blur": rng.uniform(0.0, jitter.blur, n)}


def jittered(x: torch.Tensor, jitter: ViewJitter, draws: dict[str, np.ndarray]) -> torch.Tensor:
    """x (B, 3, H, W) in [0, 1] -> the jittered views, each tile with its own draws."""
    if not jitter.active:
        return x
    out = x.float()
    if jitter.stain:
        out = hed_jittered(out, *(torch.as_tensor(draws[k], dtype=torch.float32, device=x.device)
                                  for k in ("alpha", "beta")))
    if jitter.gamma:
        gammas = torch.as_tensor(draws["gamma"], dtype=torch.float32, device=x.device).view(-1, 1, 1, 1)
        out = out.clamp(min=0.0) ** gammas
    if jitter.blur:
        out = torch.stack([gaussian_blurred(tile, float(sigma)) for tile, sigma in zip(out, draws["blur"])])
    return out.clamp(0.0, 1.0).to(x.dtype)


def hed_jittered(x: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """HED jitter of (B, 3, H, W) in [0, 1] with per-tile (B, 3) scales and shifts."""
    hed_from_rgb = torch.as_tensor(HED_FROM_RGB, dtype=torch.float32, device=x.device)
    rgb_from_hed = torch.as_tensor(RGB_FROM_HED, dtype=torch.float32, device=x.device)
    stains = torch.einsum("bchw,cd->bdhw", -torch.log(x.clamp(min=1e-6)), hed_from_rgb)
    stains = stains * alpha[:, :, None, None] + beta[:, :, None, None]
    return torch.exp(-torch.einsum("bdhw,dc->bchw", stains, rgb_from_hed)).clamp(0.0, 1.0)


def gaussian_blurred(tile: torch.Tensor, sigma: float) -> torch.Tensor:
    """(3, H, W) blurred by a separable Gaussian (reflect padding, truncated at 3 sigma); < 0.1 px: as is."""
    if sigma < 0.1:
        return tile
    radius = max(1, min(int(math.ceil(3 * sigma)), min(tile.shape[-2:]) - 1))
    offsets = torch.arange(-radius, radius + 1, dtype=tile.dtype, device=tile.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    image = torch.nn.functional.pad(tile[None], (radius, radius, radius, radius), mode="reflect")
    image = torch.nn.functional.conv2d(image, kernel.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    image = torch.nn.functional.conv2d(image, kernel.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    return image[0]
