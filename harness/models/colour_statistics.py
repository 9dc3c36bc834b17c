"""`colour-stats`: a model with no weights whose embedding is a tile's colour statistics.

Per RGB channel: the mean, the standard deviation and an 8-bin histogram of the pixel values
(30 numbers), read at 64 px; for dense tasks (segmentation) the same 30 numbers per cell of a
16 x 16 grid. A task's own probe is then a classifier on colour alone. Where it
scores well above chance, the task can be solved without looking at morphology: on a synthetic
task that means the generator leaks the label into colour; on a real one, that stain or scanner
differences between classes do.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

BINS = 8
GRID = 16  # cells per side of the dense form


class ColourStatistics(nn.Module):
    """Images in [0, 1] (the card's mean 0, std 1) -> (B, 30, 1, 1), a 1 x 1 "feature map" so the
    encoder pools it as it pools a CNN's."""

    num_features = 3 * (2 + BINS)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        pixels = images.float().clamp(0, 1).flatten(2)  # (B, 3, HW)
        bins = (pixels * BINS).long().clamp(max=BINS - 1)
        histogram = functional.one_hot(bins, BINS).float().mean(dim=2)  # (B, 3, BINS)
        features = torch.cat([pixels.mean(dim=2), pixels.std(dim=2), histogram.flatten(1)], dim=1)
        return features[:, :, None, None]

    def forward_intermediates(self, images: torch.Tensor, indices: int = 1, norm: bool = False,
                              output_fmt: str = "NCHW", intermediates_only: bool = True) -> list[torch.Tensor]:
        """The dense form, as timm's backbones give theirs: (B, 30, 16, 16), the statistics of each
        cell of a 16 x 16 grid over the image."""
        pixels = images.float().clamp(0, 1)
        pool = lambda x: functional.adaptive_avg_pool2d(x, GRID)  # noqa: E731
        mean = pool(pixels)
        std = (pool(pixels**2) - mean**2).clamp(min=0).sqrt()
        bins = (pixels * BINS).long().clamp(max=BINS - 1)  # (B, 3, H, W)
        onehot = functional.one_hot(bins, BINS).permute(0, 1, 4, 2, 3).float().flatten(1, 2)  # (B, 3*BINS, H, W)
        return [torch.cat([mean, std, pool(onehot)], dim=1)]
