"""Colour and optics jitter of the student's view (the teachers' targets stay the clean tile's).

A student that matches its teacher's embedding of a tile from a jittered copy of that tile learns
to ignore the jitter: the mechanism by which a student can be as stain-robust as its teacher or
more (H0-mini's PLISM claim; it was distilled with augmented, colour-jittered student views).
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

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

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
    """x (B, 3, H, W) in [0, 1] -> the jittered views, each tile with its own draws. Stain and tone
    act on the optical density od = -log(x): HED jitter mixes it, the tone curve x ** g scales it
    (exp(-g od)), so both cost one log and one exp."""
    if not jitter.active:
        return x

    def per_tile(key: str) -> torch.Tensor:
        return torch.as_tensor(draws[key], dtype=torch.float32, device=x.device)

    out = x.float()
    if jitter.stain or jitter.gamma:
        od = -torch.log(out.clamp(min=1e-6))
        if jitter.stain:
            od = hed_jittered_density(od, per_tile("alpha"), per_tile("beta")).clamp(min=0.0)  # clamp: x <= 1
        if jitter.gamma:
            od = od * per_tile("gamma").view(-1, 1, 1, 1)
        out = torch.exp(-od)
    if jitter.blur:
        out = gaussian_blurred(out, per_tile("blur"))
    return out.clamp(0.0, 1.0).to(x.dtype)


def hed_jittered_density(od: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """HED jitter of an RGB optical density (B, 3, H, W) with per-tile (B, 3) scales and shifts:
    to HED, scaled and shifted, back to RGB, i.e. od (H diag(alpha) R) + beta R, one 3 x 3 mix and
    one offset per tile (H, R: HED_FROM_RGB, RGB_FROM_HED)."""
    hed_from_rgb = torch.as_tensor(HED_FROM_RGB, dtype=torch.float32, device=od.device)
    rgb_from_hed = torch.as_tensor(RGB_FROM_HED, dtype=torch.float32, device=od.device)
    mix = hed_from_rgb @ torch.diag_embed(alpha) @ rgb_from_hed  # (B, 3, 3): rgb od in, rgb od out
    offset = beta @ rgb_from_hed  # (B, 3)
    b, c, h, w = od.shape
    return (torch.bmm(mix.transpose(1, 2), od.reshape(b, c, h * w)) + offset[:, :, None]).reshape(b, c, h, w)


def gaussian_blurred(x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W), tile b blurred by a separable Gaussian of sigmas[b] px (reflect padding,
    truncated at ceil(3 sigma) px; below 0.1 px a tile is left as it is), all in one grouped
    convolution: each tile's kernel is zero beyond its own radius."""
    b, c, h, w = x.shape
    blurred = sigmas >= 0.1
    if not bool(blurred.any()):
        return x
    radii = torch.where(blurred, torch.ceil(3 * sigmas), torch.zeros_like(sigmas)).clamp(max=min(h, w) - 1)
    reach = max(1, int(radii.max()))
    offsets = torch.arange(-reach, reach + 1, dtype=x.dtype, device=x.device)
    safe = torch.where(blurred, sigmas, torch.ones_like(sigmas)).to(x.dtype)
    kernels = torch.exp(-0.5 * (offsets[None] / safe[:, None]) ** 2) * (offsets.abs()[None] <= radii[:, None])
    kernels = torch.where(blurred[:, None], kernels, (offsets == 0).to(x.dtype)[None])  # unblurred: identity
    kernels = (kernels / kernels.sum(1, keepdim=True)).repeat_interleave(c, dim=0)  # (B * 3, K)
    image = torch.nn.functional.pad(x.reshape(1, b * c, h, w), (reach, reach, reach, reach), mode="reflect")
    image = torch.nn.functional.conv2d(image, kernels.view(b * c, 1, 1, -1), groups=b * c)
    image = torch.nn.functional.conv2d(image, kernels.view(b * c, 1, -1, 1), groups=b * c)
    return image.reshape(b, c, h, w)
