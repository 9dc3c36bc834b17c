"""The encoder object the rest of the harness sees, for images and for instrument models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from harness.models.card import NETWORK_KEYS, ModelCard, Pooling, card_sha256
from harness.models.identity import MAX_SLUG, EncoderInfo, WeightsKind, model_slug  # noqa: F401 - re-exported
from harness.models.transform import TileTransform


class PooledBackbone(nn.Module):
    """A timm backbone whose tokens are pooled into one embedding as the card says.

    ViT-like backbones give (B, N, D) tokens with `num_prefix_tokens` leading (CLS + registers);
    CNNs give (B, C, H, W) feature maps, pooled by spatial mean.
    """

    def __init__(self, backbone: nn.Module, pooling: Pooling):
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        self.num_prefix_tokens = int(getattr(backbone, "num_prefix_tokens", 0))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pool(self.backbone.forward_features(images))

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """forward_features output -> one embedding per image, as the card's pooling says."""
        if tokens.ndim == 4:  # CNN feature map
            return tokens.mean(dim=(2, 3))
        cls = tokens[:, 0]
        patches = tokens[:, self.num_prefix_tokens :]
        if self.pooling == "cls":
            return cls
        if self.pooling == "mean-patch":
            return patches.mean(dim=1)
        return torch.cat([cls, patches.mean(dim=1)], dim=1)

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """The dense features a segmentation decoder reads, (B, D, h, w): the last block's output
        as timm's `forward_intermediates` gives it (patch tokens on their grid, before the final
        norm; a CNN's last stage), which is what eva's decoders read (`out_indices: 1`). A backbone
        without it gives its forward_features tokens on their grid."""
        if hasattr(self.backbone, "forward_intermediates"):
            maps = self.backbone.forward_intermediates(images, indices=1, norm=False, output_fmt="NCHW",
                                                       intermediates_only=True)
            return maps[-1]
        return self.patch_grid(self.backbone.forward_features(images))

    def patch_grid(self, tokens: torch.Tensor) -> torch.Tensor:
        """forward_features output -> the spatial token map (B, D, h, w) (a square ViT grid)."""
        if tokens.ndim == 4:
            return tokens
        patches = tokens[:, self.num_prefix_tokens :]
        side = int(round(patches.shape[1] ** 0.5))
        return patches.transpose(1, 2).reshape(patches.shape[0], patches.shape[2], side, side)


@dataclass
class ImageEncoder:
    """A network that reads pixels: tiles go through `transform` and `module`."""

    info: EncoderInfo
    card: ModelCard
    module: PooledBackbone
    transform: TileTransform
    reads_pixels: ClassVar[bool] = True  # instruments (instruments.py) read the generator's truth instead

    def cache_identity(self) -> str:
        identity = f"{self.info.weights_sha256}|{self.card.pooling}|{self.transform.identity()}"
        if self.info.weights == "checkpoint":
            # a checkpoint's digest is its file's: the network its card builds from it (an act_layer, a
            # norm) is not in it, where a built network's state-dict digest fixes its names and shapes
            identity += f"|network:{card_sha256(self.card, NETWORK_KEYS)[:16]}"
        return identity
