"""Acquisition: what a slide scanner does to the transmitted light.

A `Scanner` blurs (optics), applies a colour profile and a tone curve (gamma), adds sensor noise
and compresses (JPEG). The identity scanner is the default; robustness tasks render the same
tissue through several scanners.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter


@dataclass(frozen=True)
class Scanner:
    name: str
    blur_sigma: float = 0.0  # px
    gamma: float = 1.0
    colour_matrix: tuple[tuple[float, float, float], ...] = field(
        default=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    )
    noise_std: float = 0.0  # on [0, 1] intensities
    jpeg_quality: int | None = None

    def acquire(self, light: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(H, W, 3) float intensities in [0, 1] -> (H, W, 3) uint8 RGB."""
        image = light
        if self.blur_sigma > 0:
            image = gaussian_filter(image, sigma=(self.blur_sigma, self.blur_sigma, 0))
        colour = np.asarray(self.colour_matrix, dtype=np.float32)
        if not np.array_equal(colour, np.eye(3)):
            image = image @ colour.T
        image = np.clip(image, 0.0, 1.0)
        if self.gamma != 1.0:
            image = image ** np.float32(1.0 / self.gamma)
        if self.noise_std > 0:
            image = image + np.float32(self.noise_std) * rng.standard_normal(image.shape, dtype=np.float32)
        rgb = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        if self.jpeg_quality is not None:
            buffer = io.BytesIO()
            Image.fromarray(rgb).save(buffer, format="JPEG", quality=self.jpeg_quality)
            rgb = np.asarray(Image.open(buffer).convert("RGB"))
        return rgb


# A clean, mildly soft scanner with a little sensor noise: the default acquisition.
REFERENCE_SCANNER = Scanner(name="reference", blur_sigma=0.5, noise_std=0.01)
