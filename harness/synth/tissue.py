"""Tissue morphology as haematoxylin (H) and eosin (E) concentration maps.

A tile is drawn at a nominal 0.5 um/px: a lymphocyte nucleus is ~7 um (r ~ 5-6 px), a tumour
nucleus 12-20 um, an adipocyte 50-150 um. Each class has its own architecture (sheets of
pleomorphic nuclei, fibrillar collagen with spindle nuclei, dense small round nuclei, fat cells
with wavy membranes, glands with lumens and goblet vacuoles, granular debris with nuclear dust).

Nuclei have a membrane, chromatin texture whose coarseness is a factor, and some lie out of the
focal plane. Tumour fields also carry the fine factors that the morphology-only tasks ask about:

  atypia   (0..1) nuclear size, size variation (pleomorphism), outline irregularity, chromatin
           coarseness and nucleoli, all rising together; spacing grows with nuclear size so the
           nuclear area fraction, and with it the tile's colour, does not depend on atypia.
  mitoses  mitotic figures (spiky chromosome plates in a clear halo), drawn among a fixed number
           of dark bodies whose rest are round apoptotic bodies in the same halo, so the count of
           dark bodies does not tell mitoses from their look-alikes. A plate covers more dark
           pixels than a round body: the darkest pixels grow from about 1.4% to 2.0% of a field
           from none to five figures, a difference that colour statistics did not pick up
           (colour-stats scores chance on synth-mitosis; README).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates, zoom

from harness.synth.class_names import TISSUE_CLASSES  # re-exported: the suite's tissues

MAX_MITOSES = 8
DARK_BODIES = (10, 12)  # mitoses + apoptotic bodies per tumour field: a label-independent total


@dataclass(frozen=True)
class TissueFactors:
    """The ground truth a field is drawn from (the generator's latent)."""

    tissue: str
    cellularity: float  # 0..1: how densely cells are packed
    atypia: float  # 0..1: the nuclear grade factor (visible in tumour nuclei)
    mitoses: int = 0  # mitotic figures (tumour fields)

    def latent(self) -> np.ndarray:
        """One-hot tissue class, then cellularity, atypia and mitoses / MAX_MITOSES."""
        onehot = np.zeros(len(TISSUE_CLASSES), dtype=np.float32)
        onehot[TISSUE_CLASSES.index(self.tissue)] = 1.0
        factors = [self.cellularity, self.atypia, self.mitoses / MAX_MITOSES]
        return np.concatenate([onehot, np.array(factors, np.float32)])


LATENT_FACTORS = ("cellularity", "atypia", "mitoses")
LATENT_DIM = len(TISSUE_CLASSES) + len(LATENT_FACTORS)


@dataclass
class TissueMaps:
    hematoxylin: np.ndarray  # (H, W) float32 stain concentration (optical-density units)
    eosin: np.ndarray
    nuclei: np.ndarray | None = None  # (H, W) bool: the pixels inside a nucleus (the segmentation truth)


# The nuclear class of each tissue's nuclei, in CoNSeP's grouping (eva's 5 classes)
NUCLEUS_CLASSES = ("background", "other", "inflammatory", "epithelial", "spindle-shaped")
TISSUE_NUCLEI = {"tumour": "epithelial", "mucosa": "epithelial", "lymphocytes": "inflammatory",
                 "stroma": "spindle-shaped", "adipose": "spindle-shaped", "necrosis": "other"}


def nucleus_mask(maps: TissueMaps, tissue: str) -> np.ndarray:
    """(H, W) uint8 class index of every pixel: its tissue's nucleus class inside a nucleus, else 0."""
    mask = np.zeros(maps.eosin.shape, np.uint8)
    if maps.nuclei is not None:
        mask[maps.nuclei] = NUCLEUS_CLASSES.index(TISSUE_NUCLEI[tissue])
    return mask


def draw_tissue(factors: TissueFactors, rng: np.random.Generator, size: tuple[int, int]) -> TissueMaps:
    """Draw one field of view of the given tissue."""
    h, w = size
    maps = TissueMaps(np.zeros((h, w), np.float32), np.zeros((h, w), np.float32))
    _DRAWERS[factors.tissue](maps, factors, rng)
    thickness = rng.uniform(0.85, 1.15)  # section thickness scales both stains
    maps.hematoxylin *= thickness
    maps.eosin *= thickness
    np.clip(maps.hematoxylin, 0.0, 2.2, out=maps.hematoxylin)
    np.clip(maps.eosin, 0.0, 1.5, out=maps.eosin)
    return maps


# --- primitives -------------------------------------------------------------------------


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian-filtered noise (a texture field). Wide fields are filtered on
    a coarser grid and interpolated back, which looks the same and costs far less."""
    step = max(int(sigma // 3), 1)
    coarse = (shape[0] // step + 3, shape[1] // step + 3)
    field = gaussian_filter(rng.standard_normal(coarse).astype(np.float32), sigma / step, mode="wrap", truncate=3.0)
    if step > 1:
        field = zoom(field, step, order=1)
    field = field[: shape[0], : shape[1]]
    return (field - field.mean()) / (field.std() + 1e-6)


class Nuclei:
    """Nuclei stamped into a field: in focus, or on a layer blurred as out of the focal plane.

    Each nucleus is an ellipse with a wobbly outline, a soft edge, a darker membrane and
    chromatin sampled from the field's texture (fine or coarse). Overlaps keep the darker value.
    """

    def __init__(self, rng: np.random.Generator, shape: tuple[int, int], coarseness: float = 0.2,
                 out_of_focus: float = 0.2):
        self.rng = rng
        self.shape = shape
        self.in_focus = np.zeros(shape, np.float32)
        self.blurred = np.zeros(shape, np.float32)
        self.inside = np.zeros(shape, np.float32)  # how far inside a nucleus each pixel is (1: well inside)
        self.out_of_focus = out_of_focus
        fine, coarse = smooth_noise(rng, shape, 0.7), smooth_noise(rng, shape, 1.6)
        self.texture = (1 - coarseness) * fine + coarseness * coarse
        self.contrast = 0.12 + 0.4 * coarseness

    def stamp(self, cy: float, cx: float, a: float, b: float, theta: float, intensity: float,
              irregularity: float = 0.0, nucleolus: bool = False, membrane: float = 0.25,
              textured: bool = True, focus: bool | None = None) -> None:
        rng = self.rng
        h, w = self.shape
        r = int(np.ceil(max(a, b) * (1 + irregularity))) + 2
        y0, y1 = max(int(cy) - r, 0), min(int(cy) + r + 1, h)
        x0, x1 = max(int(cx) - r, 0), min(int(cx) + r + 1, w)
        if y0 >= y1 or x0 >= x1:
            return
        dy = np.arange(y0, y1, dtype=np.float32)[:, None] - cy  # (rows, 1) and (1, cols): broadcast,
        dx = np.arange(x0, x1, dtype=np.float32)[None, :] - cx  # the same values as a full grid
        c, s = np.cos(theta), np.sin(theta)
        u, v = dx * c + dy * s, -dx * s + dy * c
        rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
        if irregularity > 0:
            phi = np.arctan2(v, u)
            k1, k2 = rng.integers(2, 5, size=2)
            p1, p2 = rng.uniform(0, 2 * np.pi, size=2)
            rho = rho / (1 + irregularity * (0.6 * np.sin(k1 * phi + p1) + 0.4 * np.sin(k2 * phi + p2)))
        inside = np.clip((1.0 - rho) * 5.0, 0.0, 1.0)  # soft edge
        rim = membrane * np.exp(-((rho - 0.88) / 0.1) ** 2) if membrane else 0.0  # chromatin condensed at the membrane
        chromatin = 1.0 + self.contrast * self.texture[y0:y1, x0:x1] if textured else 1.0
        value = intensity * inside * (chromatin + rim)
        if nucleolus:
            spot = ((u - 0.25 * a) ** 2 + (v + 0.1 * b) ** 2) < (0.2 * b) ** 2
            value = np.where(spot & (inside > 0.5), intensity * 1.6, value)
        if focus is None:
            focus = rng.random() >= self.out_of_focus
        layer = self.in_focus if focus else self.blurred
        patch = layer[y0:y1, x0:x1]
        np.maximum(patch, value, out=patch)
        np.maximum(self.inside[y0:y1, x0:x1], inside, out=self.inside[y0:y1, x0:x1])

    def into(self, maps: TissueMaps) -> None:
        blurred = gaussian_filter(self.blurred, 1.8) * 0.85
        np.maximum(maps.hematoxylin, np.maximum(self.in_focus, blurred), out=maps.hematoxylin)
        # a nucleus is where a stamp's soft edge is past half-way and some of its stain was kept
        # (a drawer may clear a stamp again: a mitotic figure's halo, a gland's lumen)
        nuclei = (self.inside >= 0.5) & ((self.in_focus > 0) | (self.blurred > 0))
        maps.nuclei = nuclei if maps.nuclei is None else maps.nuclei | nuclei


def jittered_grid(rng: np.random.Generator, size: tuple[int, int], spacing: float, jitter: float) -> np.ndarray:
    """Cell centres on a jittered grid: (n, 2) array of (y, x)."""
    h, w = size
    offset = rng.uniform(0, spacing, 2)
    ys = np.arange(offset[0] - spacing, h + spacing, spacing)
    xs = np.arange(offset[1] - spacing, w + spacing, spacing)
    grid = np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)
    return grid + rng.uniform(-jitter, jitter, grid.shape) * spacing


def fibres(rng: np.random.Generator, shape: tuple[int, int], theta: float, length: float, width: float) -> np.ndarray:
    """Long, wavy bundles at angle theta: noise stretched along the fibre direction, read
    through a smooth displacement (waviness). Zero mean, unit std."""
    h, w = shape
    side = int(np.ceil(np.hypot(h, w))) + 8
    field = gaussian_filter(rng.standard_normal((side, side)).astype(np.float32), (width, length), mode="wrap",
                            truncate=2.5)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy += 6 * smooth_noise(rng, shape, 18)
    xx += 6 * smooth_noise(rng, shape, 18)
    c, s = np.cos(theta), np.sin(theta)
    u = (xx - w / 2) * c + (yy - h / 2) * s + side / 2  # along the fibres
    v = -(xx - w / 2) * s + (yy - h / 2) * c + side / 2
    out = map_coordinates(field, [v, u], order=1, mode="wrap")
    return (out - out.mean()) / (out.std() + 1e-6)


def _lerp(lo: float, hi: float, t: float) -> float:
    return lo + (hi - lo) * t


def _cytoplasm(rng: np.random.Generator, shape: tuple[int, int], level: float) -> np.ndarray:
    """Eosin that varies across the field (large patches and fine grain), with small clefts."""
    e = level * (1 + 0.25 * smooth_noise(rng, shape, 14) + 0.12 * smooth_noise(rng, shape, 1.5))
    e[smooth_noise(rng, shape, 4) > 2.3] *= 0.25  # retraction artefacts
    return np.clip(e, 0.0, None).astype(np.float32)


# --- tissue classes ---------------------------------------------------------------------


def _tumour(maps: TissueMaps, f: TissueFactors, rng: np.random.Generator) -> None:
    shape = maps.eosin.shape
    h, w = shape
    septa = np.abs(fibres(rng, shape, rng.uniform(0, np.pi), 30, 10)) < 0.1
    maps.eosin[:] = _cytoplasm(rng, shape, rng.uniform(0.22, 0.34)) + 0.2 * septa
    atypia = f.atypia
    radius = _lerp(6.0, 10.0, atypia)
    spread = _lerp(0.06, 0.3, atypia)  # pleomorphism: coefficient of variation of nuclear size
    nuclei = Nuclei(rng, shape, coarseness=_lerp(0.05, 0.9, atypia), out_of_focus=0.2)
    spacing = radius * _lerp(3.4, 2.6, f.cellularity)  # nuclear area fraction independent of atypia
    for cy, cx in jittered_grid(rng, shape, spacing, 0.3):
        if rng.random() < 0.08 or septa[int(np.clip(cy, 0, h - 1)), int(np.clip(cx, 0, w - 1))]:
            continue
        size = radius * float(np.clip(rng.lognormal(0.0, spread), 0.6, 1.9))
        nuclei.stamp(cy, cx, size, size * rng.uniform(0.7, 1.0), rng.uniform(0, np.pi),
                     intensity=rng.uniform(0.7, 0.95), irregularity=_lerp(0.03, 0.25, atypia),
                     nucleolus=rng.random() < _lerp(0.05, 0.85, atypia))
    n_dark = int(rng.integers(DARK_BODIES[0], DARK_BODIES[1] + 1))
    yy, xx = np.ogrid[0:h, 0:w]
    for k, (cy, cx) in enumerate(rng.uniform(0.06, 0.94, (n_dark, 2)) * (h, w)):
        halo = (yy - cy) ** 2 + (xx - cx) ** 2 < 12.0**2
        maps.eosin[halo] *= 0.45  # clear cytoplasm around a mitosis or an apoptotic body
        nuclei.in_focus[halo] = 0.0
        nuclei.blurred[halo] = 0.0
        if k < f.mitoses:
            _mitotic_figure(nuclei, cy, cx, rng)
        else:
            _apoptotic_body(nuclei, cy, cx, rng)
    nuclei.into(maps)


def _mitotic_figure(nuclei: Nuclei, cy: float, cx: float, rng: np.random.Generator) -> None:
    """A metaphase plate (one bar, ~18 x 5 px) or an anaphase (two parallel bars) of small,
    spiky chromosomes: elongated and hairy where an apoptotic body is round and smooth."""
    theta = rng.uniform(0, np.pi)
    c, s = np.cos(theta), np.sin(theta)
    plates = [0.0] if rng.random() < 0.65 else [-5.0, 5.0]
    per_plate = 16 // len(plates)
    half = 9.0 if len(plates) == 1 else 7.0
    for offset in plates:
        for t in np.linspace(-half, half, per_plate) + rng.normal(0, 0.5, per_plate):
            across = offset + rng.normal(0, 0.8)
            y, x = cy + t * s + across * c, cx + t * c - across * s
            nuclei.stamp(y, x, rng.uniform(2.2, 3.2), rng.uniform(1.2, 1.6), theta + np.pi / 2 + rng.normal(0, 0.45),
                         intensity=rng.uniform(1.5, 1.8), membrane=0.0, textured=False, focus=True)


def _apoptotic_body(nuclei: Nuclei, cy: float, cx: float, rng: np.random.Generator) -> None:
    """A shrunken, round, smooth and very dark nucleus, sometimes in two or three round pieces."""
    pieces = 1 if rng.random() < 0.6 else int(rng.integers(2, 4))
    radius = 4.6 / np.sqrt(pieces)
    for _ in range(pieces):
        dy, dx = rng.normal(0, 2.5 if pieces > 1 else 0.0, 2)
        r = radius * rng.uniform(0.9, 1.1)
        nuclei.stamp(cy + dy, cx + dx, r, r * rng.uniform(0.85, 1.0), 0.0, intensity=rng.uniform(1.5, 1.8),
                     membrane=0.0, textured=False, focus=True)


def _stroma(maps: TissueMaps, f: TissueFactors, rng: np.random.Generator) -> None:
    shape = maps.eosin.shape
    h, w = shape
    theta = rng.uniform(0, np.pi)
    bundles = fibres(rng, shape, theta, rng.uniform(14, 30), rng.uniform(1.2, 2.5))
    thickness = 1 + 0.6 * smooth_noise(rng, shape, 20)  # bundles of uneven thickness
    collagen = np.clip(bundles * thickness + 0.3, 0, None) ** 0.8
    # collagen is strongly eosinophilic: even the gaps between bundles stay pink, so a pale staining
    # does not drop stroma from a slide's tissue mask
    maps.eosin[:] = np.clip(0.18 + 0.22 * collagen, 0, 0.8) * (1 + 0.1 * smooth_noise(rng, shape, 1.0))
    nuclei = Nuclei(rng, shape, coarseness=0.1, out_of_focus=0.3)
    for cy, cx in rng.uniform(0, 1, (int(_lerp(8, 30, f.cellularity)), 2)) * (h, w):
        length = rng.uniform(7, 13)
        nuclei.stamp(cy, cx, length, rng.uniform(1.6, 2.6), theta + np.pi / 2 + rng.normal(0, 0.2),
                     intensity=rng.uniform(0.8, 1.1), irregularity=0.08)
    nuclei.into(maps)


def _lymphocytes(maps: TissueMaps, f: TissueFactors, rng: np.random.Generator) -> None:
    shape = maps.eosin.shape
    maps.eosin[:] = _cytoplasm(rng, shape, 0.12)
    nuclei = Nuclei(rng, shape, coarseness=0.6, out_of_focus=0.25)
    spacing = _lerp(15, 10.5, f.cellularity)
    for cy, cx in jittered_grid(rng, shape, spacing, 0.4):
        if rng.random() < 0.06:
            continue
        radius = rng.uniform(4.0, 5.6) * _lerp(1.0, 1.15, f.atypia)
        nuclei.stamp(cy, cx, radius, radius * rng.uniform(0.85, 1.0), rng.uniform(0, np.pi),
                     intensity=rng.uniform(1.1, 1.4), irregularity=0.05)
    nuclei.into(maps)


def _adipose(maps: TissueMaps, f: TissueFactors, rng: np.random.Generator) -> None:
    from scipy.spatial import cKDTree

    h, w = maps.eosin.shape
    n_cells = int(_lerp(5, 12, f.cellularity))
    seeds = rng.uniform(-0.2, 1.2, (n_cells + 6, 2)) * (h, w)  # cells also cross the border
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy += 7 * smooth_noise(rng, (h, w), 16)  # wavy membranes
    xx += 7 * smooth_noise(rng, (h, w), 16)
    pixels = np.stack([yy.ravel(), xx.ravel()], 1)
    dist, _ = cKDTree(seeds).query(pixels, k=2)
    gap = (dist[:, 1] - dist[:, 0]).reshape(h, w)
    width = rng.uniform(1.6, 2.6) * (1 + 1.2 * np.clip(smooth_noise(rng, (h, w), 24), 0, None))  # thicker septa
    membrane = np.clip(1.0 - gap / width, 0, 1)
    maps.eosin[:] = 0.5 * membrane * (1 + 0.2 * smooth_noise(rng, (h, w), 2)) + 0.015
    nuclei = Nuclei(rng, (h, w), coarseness=0.2, out_of_focus=0.3)
    ys, xs = np.nonzero(membrane > 0.9)
    if len(ys):
        for i in rng.choice(len(ys), size=min(len(ys), int(rng.integers(2, 7))), replace=False):
            nuclei.stamp(ys[i], xs[i], rng.uniform(5, 8), 1.8, rng.uniform(0, np.pi), intensity=0.9)
    nuclei.into(maps)


def _mucosa(maps: TissueMaps, f: TissueFactors, rng: np.random.Generator) -> None:
    shape = maps.eosin.shape
    h, w = shape
    # lamina propria: loose pink background with scattered inflammatory cells
    maps.eosin[:] = _cytoplasm(rng, shape, 0.22)
    nuclei = Nuclei(rng, shape, coarseness=0.4, out_of_focus=0.25)
    for cy, cx in rng.uniform(0, 1, (int(_lerp(20, 50, f.cellularity)), 2)) * (h, w):
        radius = rng.uniform(3.5, 4.5)
        nuclei.stamp(cy, cx, radius, radius * rng.uniform(0.8, 1.0), rng.uniform(0, np.pi), intensity=1.05)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    glands = np.zeros(shape, bool)
    for _ in range(int(rng.integers(2, 4))):
        gy, gx = rng.uniform(0.1, 0.9, 2) * (h, w)
        radius, aspect, angle = rng.uniform(30, 50), rng.uniform(0.6, 1.0), rng.uniform(0, np.pi)
        c, s = np.cos(angle), np.sin(angle)
        u, v = (xx - gx) * c + (yy - gy) * s, -(xx - gx) * s + (yy - gy) * c
        rho = np.sqrt((u / radius) ** 2 + (v / (radius * aspect)) ** 2)  # 1 at the basement membrane
        epithelium = (rho < 1.0) & (rho > 0.55)
        maps.eosin[epithelium] = 0.36 * (1 + 0.15 * smooth_noise(rng, shape, 2))[epithelium]
        maps.eosin[rho <= 0.55] = 0.01  # lumen
        glands |= rho < 1.0
        ey, ex = np.nonzero(epithelium)  # goblet cells: clear mucin vacuoles in the epithelium
        for i in rng.choice(len(ey), size=min(len(ey), 12), replace=False):
            maps.eosin[(yy - ey[i]) ** 2 + (xx - ex[i]) ** 2 < rng.uniform(9, 20)] = 0.05
        for t in np.linspace(0, 2 * np.pi, int(2 * np.pi * radius / 6.5), endpoint=False) + rng.uniform(0, 0.3):
            ru, rv = 0.88 * radius * np.cos(t), 0.88 * radius * aspect * np.sin(t)  # basal, radial nuclei
            nuclei.stamp(gy + ru * s + rv * c, gx + ru * c - rv * s, 5.5, 2.4, angle + t,
                         intensity=rng.uniform(0.85, 1.1), irregularity=0.05 + 0.2 * f.atypia, focus=True)
    nuclei.blurred[glands & ~(nuclei.in_focus > 0)] = 0.0
    nuclei.into(maps)


def _necrosis(maps: TissueMaps, f: TissueFactors, rng: np.random.Generator) -> None:
    shape = maps.eosin.shape
    h, w = shape
    blotches = smooth_noise(rng, shape, 10)
    maps.eosin[:] = np.clip(0.26 + 0.1 * smooth_noise(rng, shape, 2) + 0.08 * blotches, 0.02, None)
    maps.eosin[blotches < -1.0] *= 0.3  # cracks and clefts
    nuclei = Nuclei(rng, shape, coarseness=0.0, out_of_focus=0.3)
    # karyorrhexis: nuclear dust and a few shrunken pyknotic nuclei
    for cy, cx in rng.uniform(0, 1, (int(_lerp(80, 220, f.cellularity)), 2)) * (h, w):
        radius = rng.uniform(1.0, 2.5)
        nuclei.stamp(cy, cx, radius, radius, 0.0, intensity=rng.uniform(0.9, 1.4), membrane=0.0)
    for cy, cx in rng.uniform(0, 1, (int(_lerp(4, 12, f.cellularity)), 2)) * (h, w):
        nuclei.stamp(cy, cx, 3.2, 3.0, 0.0, intensity=1.6, irregularity=0.15, membrane=0.0)
    nuclei.into(maps)
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
