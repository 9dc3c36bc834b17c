"""Backbones of known FMs that timm does not build: transformers' DINOv2 family and CONCH.

Both present timm's interface (`forward_features` -> tokens, `num_prefix_tokens`,
`num_features`) so pooling and extraction treat them like any timm ViT.
"""

from __future__ import annotations

import torch
from torch import nn


class TransformersBackbone(nn.Module):
    def __init__(self, hub_id: str | None = None, dinov2_config: dict | None = None, model: nn.Module | None = None):
        """From the Hub (`hub_id`), built offline with random weights from a DINOv2 config, or around
        a transformers `model` already loaded (a local checkpoint: checkpoint.load_transformers_dinov2)."""
        super().__init__()
        if model is not None:
            self.model = model
        elif dinov2_config is not None:
            from transformers import Dinov2Config, Dinov2Model

            self.model = Dinov2Model(Dinov2Config(**dinov2_config))
        else:
            from transformers import AutoModel  # optional dependency

            self.model = AutoModel.from_pretrained(hub_id)  # no trust_remote_code: DINOv2 is built in
        config = self.model.config
        self.num_features = int(config.hidden_size)
        self.num_prefix_tokens = 1 + int(getattr(config, "num_register_tokens", 0) or 0)
        self.embeddings = self.model.embeddings  # marks a token model

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=images).last_hidden_state


class ConchBackbone(nn.Module):
    """CONCH's vision tower, its contrastive projection output (512-d) as the CLS embedding."""

    num_prefix_tokens = 1

    def __init__(self, hub_id: str):
        super().__init__()
        from conch.open_clip_custom import create_model_from_pretrained  # optional dependency

        self.model, _ = create_model_from_pretrained("conch_ViT-B-16", f"hf_hub:{hub_id}")
        self.num_features = 512
        self.embeddings = None

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        pooled = self.model.encode_image(images, proj_contrast=True, normalize=False)
        return pooled[:, None, :]
