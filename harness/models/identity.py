"""What names a model and its results, without building it (no torch): its weights kind, results
folder and the record a result keeps."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

WeightsKind = Literal["pretrained", "random-init", "checkpoint", "instrument"]


MAX_SLUG = 120  # characters of a results folder name


def model_slug(name: str, weights: WeightsKind | None = None) -> str:
    """The folder of a model's results: its name made filesystem-safe (case kept, runs of other
    characters become '--'), with '-random-init' for untrained weights. The one slug rule. It is
    always one plain folder name: it never starts with a dot (so never '.' or '..'), and a long
    name is cut, with a hash of the whole name kept so that two long names stay apart."""
    base = re.sub(r"^[.-]+|-+$", "", re.sub(r"[^A-Za-z0-9._-]+", "--", name.strip("/"))) or "model"
    if len(base) > MAX_SLUG - len("-random-init"):
        import hashlib

        base = f"{base[:MAX_SLUG - len('-random-init') - 13]}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"
    return f"{base}-random-init" if weights == "random-init" else base


@dataclass
class EncoderInfo:
    """What a result records about the model (and what keys the embedding cache)."""

    name: str  # the spec the user gave, e.g. "timm:vit_small_patch16_224" or a path
    weights: WeightsKind
    weights_sha256: str
    n_parameters: int
    embed_dim: int

    @property
    def slug(self) -> str:
        """Folder name for this model's results."""
        return model_slug(self.name, self.weights)
