"""The evaluation transform: resize to the encoder's input size, scale, normalise. No crop:
a pathology tile is the field of view the task was labelled on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image


@dataclass(frozen=True)
class TileTransform:
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def identity(self) -> str:
        """Everything about the transform that changes the embeddings (part of the cache key)."""
        return f"resize{self.input_size}-bicubic-mean{list(self.mean)}-std{list(self.std)}"

    def prepare(self, image: np.ndarray | Image.Image) -> torch.Tensor:
        """Worker side: one RGB tile -> (3, S, S) uint8 tensor at the input size."""
        if isinstance(image, Image.Image):
            if image.size != (self.input_size, self.input_size):
                image = image.convert("RGB").resize((self.input_size, self.input_size), Image.BICUBIC)
            array = np.asarray(image.convert("RGB"))
        else:
            array = np.asarray(image)
            if array.shape[:2] != (self.input_size, self.input_size):
                array = np.asarray(
                    Image.fromarray(array).resize((self.input_size, self.input_size), Image.BICUBIC)
                )
        return torch.from_numpy(np.array(array, dtype=np.uint8)).permute(2, 0, 1)  # a writable copy

    def normalise(self, batch: torch.Tensor) -> torch.Tensor:
        """Main-process side: (B, 3, S, S) uint8 -> float, scaled to [0, 1], mean/std normalised."""
        mean = torch.tensor(self.mean, device=batch.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=batch.device).view(1, 3, 1, 1)
        return (batch.float().div_(255.0) - mean) / std

