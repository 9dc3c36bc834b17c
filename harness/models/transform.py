"""The evaluation transform: resize to the encoder's input size (with the model's interpolation),
optionally centre-crop as the model's own eval transform does, scale, normalise.

By default there is no crop: a pathology tile is the field of view the task was labelled on. A
model whose authors evaluate with a crop (Prov-GigaPath: resize to 256, centre-crop 224) says so
in its card (`crop_pct`), as timm's eval transform does (resize to floor(size / crop_pct)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

INTERPOLATIONS = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}


@dataclass(frozen=True)
class TileTransform:
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    crop_pct: float = 1.0

    @property
    def resize_to(self) -> int:
        return self.input_size if self.crop_pct >= 1.0 else int(math.floor(self.input_size / self.crop_pct))

    def identity(self) -> str:
        """Everything about the transform that changes the embeddings (part of the cache key)."""
        base = f"resize{self.input_size}-bicubic-mean{list(self.mean)}-std{list(self.std)}"
        if (self.interpolation, self.crop_pct) == ("bicubic", 1.0):
            return base  # the keys of entries cached before interpolation and crop were settings
        return f"{base}-{self.interpolation}-crop{self.crop_pct:g}"

    def prepare(self, image: np.ndarray | Image.Image) -> torch.Tensor:
        """Worker side: one RGB tile -> (3, S, S) uint8 tensor at the input size."""
        side = self.resize_to
        if isinstance(image, Image.Image):
            image = image.convert("RGB") if image.mode != "RGB" else image
            if image.size != (side, side):
                image = image.resize((side, side), INTERPOLATIONS[self.interpolation])
            array = np.asarray(image)
        else:
            array = np.asarray(image)
            if array.shape[:2] != (side, side):
                array = np.asarray(Image.fromarray(array).resize((side, side), INTERPOLATIONS[self.interpolation]))
        if side != self.input_size:  # centre crop, offset rounded as torchvision's CenterCrop rounds it
            top = int(round((side - self.input_size) / 2.0))
            array = array[top : top + self.input_size, top : top + self.input_size]
        return torch.from_numpy(np.array(array, dtype=np.uint8)).permute(2, 0, 1)  # a writable copy

    def normalise(self, batch: torch.Tensor) -> torch.Tensor:
        """Main-process side: (B, 3, S, S) uint8 -> float, scaled to [0, 1], mean/std normalised."""
        mean = torch.tensor(self.mean, device=batch.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=batch.device).view(1, 3, 1, 1)
        return batch.float().div_(255.0).sub_(mean).div_(std)  # in place: the same arithmetic, one tensor
