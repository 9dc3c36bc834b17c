"""Beer-Lambert rendering: stain concentrations -> transmitted RGB light.

Optical density per channel is OD = sum_s c_s * v_s (+ glass), and I = I0 * 10^(-OD)
(Ruifrok & Johnston, 2001). A `Staining` is one lab's protocol: the stain colour vectors and
how strongly each stain takes. Rendering the same `TissueMaps` under several stainings gives
pixel-aligned tiles of identical tissue, which the robustness tasks need.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.synth.tissue import TissueMaps


def _unit(v: tuple[float, float, float]) -> np.ndarray:
    arr = np.asarray(v, dtype=np.float32)
    return arr / np.linalg.norm(arr)


@dataclass(frozen=True)
class Staining:
    name: str
    hematoxylin: tuple[float, float, float]  # RGB optical-density direction of haematoxylin
    eosin: tuple[float, float, float]
    hematoxylin_strength: float = 1.0
    eosin_strength: float = 1.0
    glass_od: float = 0.03  # background absorbance of slide and mounting medium

    def optical_density(self, maps: TissueMaps) -> np.ndarray:
        """(H, W, 3) optical density."""
        h = maps.hematoxylin[..., None] * (self.hematoxylin_strength * _unit(self.hematoxylin))
        e = maps.eosin[..., None] * (self.eosin_strength * _unit(self.eosin))
        return h + e + self.glass_od

    def render(self, maps: TissueMaps) -> np.ndarray:
        """(H, W, 3) float32 transmitted intensity in [0, 1]."""
        od = self.optical_density(maps).astype(np.float32, copy=False)
        return np.exp(od * np.float32(-np.log(10.0)))  # 10^-OD


# Ruifrok & Johnston's H&E vectors: the reference staining every synthetic tile uses by default.
STANDARD_HE = Staining(
    name="standard",
    hematoxylin=(0.650, 0.704, 0.286),
    eosin=(0.072, 0.990, 0.105),
)
