"""Tissue morphology as haematoxylin (H) and eosin (E) concentration maps.

A tile is drawn at a nominal 0.5 um/px: a lymphocyte nucleus is ~7 um (r ~ 5-6 px), a tumour
nucleus 10-20 um, an adipocyte 50-150 um. Each class has its own architecture (sheets of large
pleomorphic nuclei, wavy collagen with spindle nuclei, dense small round nuclei, Voronoi fat
cells, glands with lumens and goblet vacuoles, granular debris with nuclear dust), so a model
must see morphology and colour, not one statistic, to separate them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

TISSUE_CLASSES: tuple[str, ...] = (
    "tumour",
    "stroma",
    "lymphocytes",
    "adipose",
    "mucosa",
    "necrosis",
)


@dataclass(frozen=True)
class TissueFactors:
    """The ground truth a tile is drawn from (the generator's latent)."""

    tissue: str
    cellularity: float  # 0..1: how densely cells are packed
    atypia: float  # 0..1: nuclear size and pleomorphism (a grade-like factor)

    def latent(self) -> np.ndarray:
        """One-hot tissue class followed by the continuous factors."""
        onehot = np.zeros(len(TISSUE_CLASSES), dtype=np.float32)
        onehot[TISSUE_CLASSES.index(self.tissue)] = 1.0
        return np.concatenate([onehot, np.array([self.cellularity, self.atypia], np.float32)])


LATENT_DIM = len(TISSUE_CLASSES) + 2


@dataclass
class TissueMaps:
    hematoxylin: np.ndarray  # (H, W) float32 stain concentration (optical-density units)
    eosin: np.ndarray


def draw_tissue(factors: TissueFactors, rng: np.random.Generator, size: tuple[int, int]) -> TissueMaps:
    """Draw one field of view of the given tissue."""
    h, w = size
    maps = TissueMaps(np.zeros((h, w), np.float32), np.zeros((h, w), np.float32))
    _DRAWERS[factors.tissue](maps, factors, rng)
    thickness = rng.uniform(0.85, 1.15)  # section thickness scales both stains
    maps.hematoxylin *= thickness
    maps.eosin *= thickness
    np.clip(maps.hematoxylin, 0.0, 2.0, out=maps.hematoxylin)
    np.clip(maps.eosin, 0.0, 1.5, out=maps.eosin)
    return maps


# --- primitives -------------------------------------------------------------------------


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian-filtered noise (a texture field)."""
    field = gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    return field / (field.std() + 1e-6)


def stamp_nucleus(
    canvas: np.ndarray,
    cy: float,
    cx: float,
    a: float,
    b: float,
    theta: float,
    intensity: float,
    rng: np.random.Generator,
    irregularity: float = 0.0,
    nucleolus: bool = False,
) -> None:
    """Add one nucleus: an ellipse (semi-axes a, b, angle theta) with a wobbly outline,
    a soft edge and granular chromatin. Overlaps keep the darker value."""
    h, w = canvas.shape
    r = int(np.ceil(max(a, b) * (1 + irregularity))) + 2
    y0, y1 = max(int(cy) - r, 0), min(int(cy) + r + 1, h)
    x0, x1 = max(int(cx) - r, 0), min(int(cx) + r + 1, w)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    c, s = np.cos(theta), np.sin(theta)
    u, v = dx * c + dy * s, -dx * s + dy * c
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    if irregularity > 0:
        phi = np.arctan2(v, u)
        k1, k2 = rng.integers(2, 4, size=2)
        p1, p2 = rng.uniform(0, 2 * np.pi, size=2)
        outline = 1 + irregularity * (0.6 * np.sin(k1 * phi + p1) + 0.4 * np.sin(k2 * phi + p2))
        rho = rho / outline
    inside = np.clip((1.0 - rho) * 4.0, 0.0, 1.0)  # soft edge, ~1/4 of the radius
    chromatin = 0.75 + 0.25 * rng.random(inside.shape, dtype=np.float32)
    value = intensity * inside * chromatin
    if nucleolus:
        nucleolus_mask = ((u - 0.2 * a) ** 2 + v**2) < (0.22 * b) ** 2
        value = np.where(nucleolus_mask & (inside > 0.5), intensity * 1.5, value)
    patch = canvas[y0:y1, x0:x1]
    np.maximum(patch, value, out=patch)


def jittered_grid(rng: np.random.Generator, size: tuple[int, int], spacing: float, jitter: float) -> np.ndarray:
    """Cell centres on a jittered grid: (n, 2) array of (y, x)."""
    h, w = size
    ys = np.arange(spacing / 2, h, spacing)
    xs = np.arange(spacing / 2, w, spacing)
    grid = np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)
    return grid + rng.uniform(-jitter, jitter, grid.shape) * spacing


def _lerp(lo: float, hi: float, t: float) -> float:
    return lo + (hi - lo) * t


# --- tissue classes ---------------------------------------------------------------------


def _tumour(maps: TissueMaps, f: TissueFactors, rng: np.random.Generator) -> None:
    shape = maps.eosin.shape
    # Cohesive sheets of cells with eosinophilic cytoplasm, separated by thin stromal septa.
    septa = np.abs(smooth_noise(rng, shape, 18)) < 0.12
    maps.eosin[:] = 0.32 + 0.06 * smooth_noise(rng, shape, 3) + 0.25 * septa
    spacing = _lerp(26, 17, f.cellularity)
    for cy, cx in jittered_grid(rng, shape, spacing, 0.3):
        if rng.random() < 0.08 or septa[int(np.clip(cy, 0, shape[0] - 1)), int(np.clip(cx, 0, shape[1] - 1))]:
            continue
        radius = _lerp(6.5, 10.5, f.atypia) * rng.uniform(0.8, 1.3)
        stamp_nucleus(
            maps.hematoxylin, cy, cx, radius, radius * rng.uniform(0.7, 1.0), rng.uniform(0, np.pi),
            intensity=rng.uniform(0.75, 1.05), rng=rng,
            irregularity=_lerp(0.06, 0.2, f.atypia), nucleolus=rng.random() < 0.3 + 0.6 * f.atypia,
        )


def _stroma(maps: TissueMaps, f: TissueFactors, rng: np.random.Generator) -> None:
    shape = maps.eosin.shape
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, np.pi)
    wavelength = rng.uniform(6, 10)
    warp = 7.0 * smooth_noise(rng, shape, 22)
    phase = 2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / wavelength + warp
    fibres = np.clip(np.sin(phase), 0, 1) ** 1.5
    maps.eosin[:] = 0.18 + 0.5 * fibres * (0.85 + 0.15 * smooth_noise(rng, shape, 2))
    n = int(_lerp(8, 28, f.cellularity))
    for cy, cx in rng.uniform(0, 1, (n, 2)) * (h, w):
        length = rng.uniform(8, 13)
        stamp_nucleus(
            maps.hematoxylin, cy, cx, length, rng.uniform(1.8, 2.8), theta + np.pi / 2 + rng.normal(0, 0.15),
            intensity=rng.uniform(0.8, 1.1), rng=rng, irregularity=0.05,
        )


def _lymphocytes(maps: TissueMaps, f: TissueFactors, rng: np.random.Generator) -> None:
    shape = maps.eosin.shape
    maps.eosin[:] = 0.12 + 0.04 * smooth_noise(rng, shape, 4)
    spacing = _lerp(15, 10.5, f.cellularity)
    for cy, cx in jittered_grid(rng, shape, spacing, 0.35):
        if rng.random() < 0.06:
            continue
        radius = rng.uniform(4.2, 5.6) * _lerp(1.0, 1.15, f.atypia)
        stamp_nucleus(
            maps.hematoxylin, cy, cx, radius, radius * rng.uniform(0.85, 1.0), rng.uniform(0, np.pi),
            intensity=rng.uniform(1.2, 1.5), rng=rng, irregularity=0.04,
        )


def _adipose(maps: TissueMaps, f: TissueFactors, rng: np.random.Generator) -> None:
    from scipy.spatial import cKDTree

    h, w = maps.eosin.shape
    n_cells = int(_lerp(5, 12, f.cellularity))
    seeds = rng.uniform(-0.2, 1.2, (n_cells + 6, 2)) * (h, w)  # cells also cross the border
    yy, xx = np.mgrid[0:h, 0:w]
    pixels = np.stack([yy.ravel(), xx.ravel()], 1).astype(np.float32)
    dist, _ = cKDTree(seeds).query(pixels, k=2)
    gap = (dist[:, 1] - dist[:, 0]).reshape(h, w)
    membrane = np.clip(1.0 - gap / rng.uniform(2.0, 3.2), 0, 1)
    maps.eosin[:] = 0.55 * membrane + 0.02
    # a few flattened nuclei pressed against the membranes
    ys, xs = np.nonzero(membrane > 0.9)
    if len(ys):
        for i in rng.choice(len(ys), size=min(len(ys), int(rng.integers(2, 6))), replace=False):
            stamp_nucleus(maps.hematoxylin, ys[i], xs[i], rng.uniform(5, 8), 1.8, rng.uniform(0, np.pi),
                          intensity=0.9, rng=rng)


def _mucosa(maps: TissueMaps, f: TissueFactors, rng: np.random.Generator) -> None:
    shape = maps.eosin.shape
    h, w = shape
    # lamina propria: loose pink background with scattered inflammatory cells
    maps.eosin[:] = 0.26 + 0.05 * smooth_noise(rng, shape, 3)
    for cy, cx in rng.uniform(0, 1, (int(_lerp(20, 50, f.cellularity)), 2)) * (h, w):
        radius = rng.uniform(3.5, 4.5)
        stamp_nucleus(maps.hematoxylin, cy, cx, radius, radius, 0.0, intensity=1.1, rng=rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(int(rng.integers(2, 4))):
        gy, gx = rng.uniform(0.1, 0.9, 2) * (h, w)
        radius, aspect, angle = rng.uniform(30, 50), rng.uniform(0.6, 1.0), rng.uniform(0, np.pi)
        c, s = np.cos(angle), np.sin(angle)
        u, v = (xx - gx) * c + (yy - gy) * s, -(xx - gx) * s + (yy - gy) * c
        rho = np.sqrt((u / radius) ** 2 + (v / (radius * aspect)) ** 2)  # 1 at the basement membrane
        epithelium = (rho < 1.0) & (rho > 0.55)
        lumen = rho <= 0.55
        maps.eosin[epithelium] = 0.42
        maps.eosin[lumen] = 0.0
        maps.hematoxylin[rho < 1.0] = 0.0
        # goblet cells: clear mucin vacuoles inside the epithelium
        ey, ex = np.nonzero(epithelium)
        for i in rng.choice(len(ey), size=min(len(ey), 12), replace=False):
            maps.eosin[(yy - ey[i]) ** 2 + (xx - ex[i]) ** 2 < rng.uniform(9, 20)] = 0.05
        # columnar nuclei along the basal side, long axis radial
        n_nuclei = int(2 * np.pi * radius / 6.5)
        for t in np.linspace(0, 2 * np.pi, n_nuclei, endpoint=False) + rng.uniform(0, 0.3):
            ru, rv = 0.88 * radius * np.cos(t), 0.88 * radius * aspect * np.sin(t)
            ny, nx = gy + ru * s + rv * c, gx + ru * c - rv * s
            stamp_nucleus(maps.hematoxylin, ny, nx, 5.5, 2.4, angle + t, intensity=rng.uniform(0.85, 1.1),
                          rng=rng, irregularity=0.05 + 0.2 * f.atypia)


def _necrosis(maps: TissueMaps, f: TissueFactors, rng: np.random.Generator) -> None:
    shape = maps.eosin.shape
    h, w = shape
    blotches = smooth_noise(rng, shape, 10)
    maps.eosin[:] = np.clip(0.28 + 0.12 * smooth_noise(rng, shape, 2) + 0.08 * blotches, 0.02, None)
    maps.eosin[blotches < -1.0] *= 0.3  # cracks and clefts
    # karyorrhexis: nuclear dust and a few shrunken pyknotic nuclei
    for cy, cx in rng.uniform(0, 1, (int(_lerp(80, 220, f.cellularity)), 2)) * (h, w):
        radius = rng.uniform(1.0, 2.5)
        stamp_nucleus(maps.hematoxylin, cy, cx, radius, radius, 0.0, intensity=rng.uniform(0.9, 1.4), rng=rng)
    for cy, cx in rng.uniform(0, 1, (int(_lerp(4, 12, f.cellularity)), 2)) * (h, w):
        stamp_nucleus(maps.hematoxylin, cy, cx, 3.2, 3.0, 0.0, intensity=1.6, rng=rng, irregularity=0.15)
    maps.hematoxylin += 0.05 * np.clip(smooth_noise(rng, shape, 6), 0, None)  # smudged chromatin


_DRAWERS = {
    "tumour": _tumour,
    "stroma": _stroma,
    "lymphocytes": _lymphocytes,
    "adipose": _adipose,
    "mucosa": _mucosa,
    "necrosis": _necrosis,
}
assert set(_DRAWERS) == set(TISSUE_CLASSES)
