"""Image perturbations for transform invariance (THUNDER style): one function per transform.

Each takes an RGB uint8 tile and a random generator and returns the perturbed tile; the
generator is seeded per tile, so a dataset's perturbed copy is the same on every run.
Strengths (HED-light of Tellez et al. 2019 for stain jitter, JPEG quality 50, blur sigma 1.5 px
at 0.5 um/px, gamma in [0.7, 1.4]) are written here once and versioned with the dataset
fingerprint through PERTURBATION_VERSION.
"""

from __future__ import annotations

import io
from typing import Callable

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

PERTURBATION_VERSION = 1

# Ruifrok & Johnston's haematoxylin, eosin and DAB optical-density vectors (rows), as in skimage
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], np.float64)
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)


def hed_jitter(tile: np.ndarray, rng: np.random.Generator, sigma: float = 0.05) -> np.ndarray:
    """Scale and shift each stain channel in HED space: s' = s * a + b, a ~ U(1 - sigma, 1 + sigma),
    b ~ U(-sigma, sigma) (Tellez et al., 'HED-light')."""
    rgb = np.maximum(tile.astype(np.float64) / 255.0, 1e-6)
    stains = (-np.log(rgb)) @ HED_FROM_RGB
    alpha = rng.uniform(1 - sigma, 1 + sigma, 3)
    beta = rng.uniform(-sigma, sigma, 3)
    od = (stains * alpha + beta) @ RGB_FROM_HED
    return _to_uint8(np.exp(-od))


def gaussian_blur(tile: np.ndarray, rng: np.random.Generator, sigma: float = 1.5) -> np.ndarray:
    return _to_uint8(gaussian_filter(tile.astype(np.float32) / 255.0, sigma=(sigma, sigma, 0)))


def jpeg(tile: np.ndarray, rng: np.random.Generator, quality: int = 50) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(tile).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def gamma(tile: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _to_uint8((tile.astype(np.float32) / 255.0) ** rng.uniform(0.7, 1.4))


def flip(tile: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.ascontiguousarray(tile[:, ::-1] if rng.random() < 0.5 else tile[::-1])


def rot90(tile: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(tile, k=int(rng.integers(1, 4))))


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


PERTURBATIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "hed_jitter": hed_jitter,
    "gaussian_blur": gaussian_blur,
    "jpeg": jpeg,
    "gamma": gamma,
    "flip": flip,
    "rot90": rot90,
}
