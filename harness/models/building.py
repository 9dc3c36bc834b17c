"""A network and its card -> the encoder the harness runs: timm builds (pretrained, random or
from a local file), the zoo's local architectures, the transform taken from timm's pretrained_cfg,
pooling checks, and the weights hash that keys the embedding cache.

Used by the loader (loading.py) and by local checkpoints (checkpoint.py); imports neither.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.errors import HarnessError
from harness.models.card import DEFAULT_MAX_PARAMETERS, ModelCard
from harness.models.encoder import EncoderInfo, ImageEncoder, PooledBackbone, WeightsKind
from harness.models.transform import TileTransform
from harness.models.zoo import TRANSFORMERS_DINOV2


def check_architecture_budget(card: ModelCard, label: str, max_parameters: int = DEFAULT_MAX_PARAMETERS) -> int:
    """Build the card's timm architecture on the meta device (no memory) and refuse it, in one
    line, above `max_parameters`; its parameter count otherwise. Any error building it is the
    same one line a real build gives."""
    count, _ = architecture_size(card)
    if count > max_parameters:
        raise HarnessError(
            f"{label}: the card's architecture '{card.architecture}' (timm_kwargs {card.timm_kwargs}) has "
            f"{_count(count)} parameters ({count * 4 / 1e9:.1f} GB in fp32), above the budget of "
            f"{_count(max_parameters)}; it was not built. Check the card, or raise the budget with "
            "--max-parameters where the machine has the memory")
    return count


def architecture_size(card: ModelCard) -> tuple[int, int]:
    """(parameters, numbers in its checkpoint: parameters and saved buffers) of the card's
    architecture, built on the meta device (no memory)."""
    with torch.device("meta"):
        backbone = build_network(card)
    saved = checkpoint_module(backbone).state_dict().values()
    return sum(p.numel() for p in backbone.parameters()), sum(t.numel() for t in saved)


def build_network(card: ModelCard) -> nn.Module:
    """The untrained network a checkpoint's card (zoo.resolve_card's, its `base:` merged) declares:
    its timm architecture, or a transformers DINOv2 of its config.json's settings (local_kwargs)."""
    if card.architecture == TRANSFORMERS_DINOV2:
        return build_local_backbone(card)
    return build_timm(card.architecture, card.timm_kwargs, pretrained=False)


def checkpoint_module(backbone: nn.Module) -> nn.Module:
    """The module whose state dict a checkpoint of `backbone` holds: transformers' own model inside
    the wrapper that gives it timm's interface (save_pretrained's key names), else the backbone."""
    from harness.models.foreign import TransformersBackbone

    return backbone.model if isinstance(backbone, TransformersBackbone) else backbone


def _count(n: int) -> str:
    """10_255_279_992 -> '10.3B', 5_524_416 -> '5.5M'."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.1f}{suffix}"
    return str(n)


def build_timm(architecture: str, timm_kwargs: dict[str, Any], pretrained: bool, weights_file: Path | None = None) -> nn.Module:
    import timm

    kwargs = resolve_layer_names(timm_kwargs)
    if weights_file is not None:
        kwargs["pretrained_cfg_overlay"] = {"file": str(weights_file)}
    torch.manual_seed(0)  # random init is reproducible, so its embeddings can be cached
    try:
        return timm.create_model(architecture, pretrained=pretrained, num_classes=0, **kwargs)
    except RuntimeError as error:
        if "Unknown model" in str(error):
            raise HarnessError(f"timm has no architecture '{architecture}': see timm.list_models()") from None
        raise
    except (TypeError, ValueError, AttributeError, AssertionError, KeyError, IndexError,
            ZeroDivisionError) as error:  # a kwarg the architecture refuses
        if not timm_kwargs:
            raise
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise HarnessError(f"cannot build '{architecture}' with timm_kwargs {timm_kwargs}: {first}; fix timm_kwargs "
                           "in the model card") from None


def build_local_backbone(card: ModelCard) -> nn.Module:
    """A known model's architecture with random weights, built without the Hub (zoo.py's
    local_architecture). Under `with torch.device("meta")` nothing is allocated."""
    loader, _, name = (card.local_architecture or "").partition(":")
    if loader == "timm":
        return build_timm(name, card.local_kwargs, pretrained=False)
    if card.local_architecture == TRANSFORMERS_DINOV2:
        from harness.install_hints import missing_extra
        from harness.models.foreign import TransformersBackbone

        missing = missing_extra("transformers")  # an optional dependency: say how to install it, in one line
        if missing:
            raise HarnessError(f"model '{card.name}': {missing}")

        torch.manual_seed(0)
        return TransformersBackbone(dinov2_config=card.local_kwargs)
    raise HarnessError(f"model '{card.name}': no local architecture (local_architecture: {card.local_architecture})")


def resolve_layer_names(timm_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Cards store layer classes by name (YAML cannot hold a class): map them back."""
    import timm.layers

    resolved = dict(timm_kwargs)
    for key in ("mlp_layer", "act_layer", "norm_layer"):
        value = resolved.get(key)
        if isinstance(value, str):
            layer = getattr(timm.layers, value, None) or getattr(nn, value, None)
            built = layer.func if isinstance(layer, functools.partial) else layer  # SwiGLUPacked is a partial
            if not (isinstance(built, type) and issubclass(built, nn.Module)):
                raise HarnessError(f"model card timm_kwargs.{key}: unknown layer '{value}'")
            resolved[key] = layer
    return resolved


def card_from_timm(backbone: nn.Module, card: ModelCard) -> ModelCard:
    """Fill the transform from timm's pretrained_cfg where the card does not say otherwise."""
    cfg = getattr(backbone, "pretrained_cfg", {}) or {}
    update: dict[str, Any] = {}
    if "mean" not in card.model_fields_set and cfg.get("mean"):
        update["mean"] = tuple(cfg["mean"])
    if "std" not in card.model_fields_set and cfg.get("std"):
        update["std"] = tuple(cfg["std"])
    if "input_size" not in card.model_fields_set and cfg.get("input_size"):
        update["input_size"] = int(cfg["input_size"][-1])
    if "interpolation" not in card.model_fields_set and cfg.get("interpolation") in ("bicubic", "bilinear"):
        update["interpolation"] = cfg["interpolation"]
    # a Hub model's own crop (its author's eval transform); not ImageNet's for a bare timm name, nor
    # over a known model's card, which states its transform
    if card.hub_id and card.name is None and "crop_pct" not in card.model_fields_set and cfg.get("crop_pct"):
        update["crop_pct"] = min(1.0, float(cfg["crop_pct"]))
    return card.model_copy(update=update)


def finish_encoder(
    spec: str, backbone: nn.Module, card: ModelCard, weights: WeightsKind, sha256: str, device: str
) -> ImageEncoder:
    module = PooledBackbone(backbone, card.pooling).eval().to(device)
    width = int(getattr(backbone, "num_features"))
    tokens = _has_tokens(backbone)
    if tokens and card.pooling != "mean-patch" and module.num_prefix_tokens == 0:
        raise HarnessError(f"model '{spec}': pooling '{card.pooling}' needs a class token; use pooling: mean-patch")
    dim = width * 2 if tokens and card.pooling == "cls+mean" else width
    if card.embed_dim is not None and card.embed_dim != dim:
        raise HarnessError(
            f"model '{spec}': the card declares embed_dim {card.embed_dim} but the network gives {dim} "
            f"(pooling {card.pooling}): fix embed_dim or pooling in the card"
        )
    n_parameters = sum(p.numel() for p in backbone.parameters())
    info = EncoderInfo(name=spec, weights=weights, weights_sha256=sha256, n_parameters=n_parameters, embed_dim=dim)
    transform = TileTransform(card.input_size, tuple(card.mean), tuple(card.std), card.interpolation, card.crop_pct)
    return ImageEncoder(info=info, card=card.model_copy(update={"embed_dim": dim}), module=module, transform=transform)


def _has_tokens(backbone: nn.Module) -> bool:
    """ViT-like (token sequence) rather than a CNN feature map."""
    return hasattr(backbone, "patch_embed") or hasattr(backbone, "embeddings")


def state_dict_sha256(module: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
