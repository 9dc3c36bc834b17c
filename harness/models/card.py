"""The model card that travels with every encoder: how to build it and how to feed it.

Like timm's pretrained_cfg, but with the pooling and embedding dim a benchmark must fix. A
submitted checkpoint carries one (card.yaml); known FMs have one in `zoo.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import HarnessError
from harness.yaml_files import read_yaml

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Pooling = Literal["cls", "mean-patch", "cls+mean"]


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    base: str | None = None  # a known model (see `harness list`) whose card this one extends
    architecture: str | None = None  # timm model name
    timm_kwargs: dict[str, Any] = {}
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input_size: int = 224
    interpolation: Literal["bicubic", "bilinear"] = "bicubic"  # of the resize to input_size
    crop_pct: float = Field(1.0, gt=0, le=1)  # <1: resize to input_size / crop_pct, then centre-crop
    pooling: Pooling = "cls"
    embed_dim: int | None = None  # checked against the network when given
    slide_mpp: float | None = None  # um/px it reads slide tiles at (None: the dataset's grid, 0.5)
    hub_id: str | None = None
    # the architecture built without the Hub (random weights, or a local checkpoint with `base:`):
    # "timm:<name>" with local_kwargs its complete create_model arguments, or "transformers:dinov2"
    # with local_kwargs its Dinov2Config
    local_architecture: str | None = None
    local_kwargs: dict[str, Any] = {}
    revision: str | None = None  # the Hub commit the weights were read at (a Hub submission)
    licence: str = ""
    notes: str = ""


def read_card(path: Path) -> ModelCard:
    raw = read_yaml(path, "model card") or {}
    if not isinstance(raw, dict):
        raise HarnessError(f"{path}: a model card is a mapping of keys (architecture, pooling, embed_dim, ...)")
    try:
        return ModelCard.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise HarnessError(f"{path}: model card key '{key}': {message}") from None
