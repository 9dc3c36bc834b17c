"""`--model SPEC` -> an encoder. SPEC is one of:

  random-noise | synth-oracle          instrument models (synthetic suite)
  timm:<name>                          a timm architecture (pretrained weights from the Hub)
  hf-hub:<org>/<repo>                  a timm model hosted on the Hub
  <known name>                         a pathology FM from zoo.py, e.g. uni, virchow2, h0-mini
  <path>                               a local checkpoint directory or file (see checkpoint.py)

Untrusted weights are never unpickled: safetensors, or torch.load(weights_only=True).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.errors import HarnessError
from harness.models.card import ModelCard
from harness.models.encoder import EncoderInfo, ImageEncoder, PooledBackbone, WeightsKind
from harness.models.instruments import INSTRUMENTS, InstrumentEncoder, make_instrument
from harness.models.transform import TileTransform
from harness.models.zoo import find_known_model
from harness.synth.tissue import LATENT_DIM

DEFAULT_MODEL = "timm:vit_tiny_patch16_224"

Encoder = ImageEncoder | InstrumentEncoder


@dataclass(frozen=True)
class LoadOptions:
    random_init: bool = False  # score the architecture untrained (labelled random-init)
    random_fallback: bool = False  # the default model: random-init when weights are unreachable
    device: str = "cpu"


def _is_named_model(spec: str) -> bool:
    """An instrument, a timm or Hub name, or a known FM: anything but a path."""
    return spec in INSTRUMENTS or spec.startswith(("timm:", "hf-hub:")) or find_known_model(spec) is not None


def local_checkpoint_path(spec: str) -> Path | None:
    """The path of a local checkpoint spec; None for named models and missing paths."""
    path = Path(spec).expanduser()
    return path if not _is_named_model(spec) and path.exists() else None


def load_encoder(spec: str, options: LoadOptions = LoadOptions()) -> Encoder:
    if spec in INSTRUMENTS:
        return make_instrument(spec, LATENT_DIM)
    if spec.startswith("timm:"):
        return _load_timm(spec, spec.removeprefix("timm:"), ModelCard(), options)
    known = find_known_model(spec)
    if known is not None:
        return _load_known(spec, known, options)
    if spec.startswith("hf-hub:"):
        return _load_timm(spec, spec, ModelCard(hub_id=spec.removeprefix("hf-hub:")), options)
    path = local_checkpoint_path(spec)
    if path is not None:
        from harness.models.checkpoint import load_checkpoint_encoder

        return load_checkpoint_encoder(path, options)
    raise HarnessError(
        f"unknown model '{spec}': give timm:<name>, hf-hub:<org>/<repo>, a known model "
        "(see `harness list`), random-noise, synth-oracle, or the path of a checkpoint"
    )


def check_model_spec(spec: str) -> None:
    """Cheap validation before a run starts (no weights are read): a usage error exits 2 at once
    instead of failing every task of the model."""
    if not spec.strip():
        raise HarnessError("--model '': empty model spec (an empty path would mean the current folder)")
    if spec.startswith("timm:"):
        import timm

        if not timm.is_model(spec.removeprefix("timm:")):
            raise HarnessError(f"model '{spec}': timm has no architecture '{spec.removeprefix('timm:')}': "
                               "see timm.list_models()")
    if _is_named_model(spec):
        return
    path = local_checkpoint_path(spec)
    if path is None:
        raise HarnessError(
            f"model '{spec}' is not a known model and no such file or directory exists: "
            "check the path, or see `harness list` for model names"
        )
    from harness.models.card import read_card
    from harness.models.checkpoint import locate_checkpoint

    _, card = locate_checkpoint(path)  # a folder without weights or card.yaml
    read_card(card)  # a card that is not UTF-8, not YAML, or has unknown keys


def _load_known(spec: str, card: ModelCard, options: LoadOptions) -> Encoder:
    loader = (card.architecture or "").split(":", 1)[0]
    if loader == "hf-hub" and not (options.random_init and card.local_architecture):
        return _load_timm(spec, card.architecture, card, options)
    if loader == "builtin":  # colour-stats: a fixed function of the pixels, nothing to load or initialise
        from harness.models.colour_statistics import ColourStatistics

        backbone = ColourStatistics()
        sha = hashlib.sha256(f"{card.architecture}:bins{backbone.num_features}".encode()).hexdigest()
        return finish_encoder(spec, backbone, card, "instrument", sha, options.device)
    if loader == "package":  # a checkpoint shipped inside the harness (synth-reference)
        from importlib.resources import as_file, files

        from harness.models.checkpoint import load_checkpoint_encoder

        with as_file(files("harness").joinpath(card.architecture.split(":", 1)[1])) as folder:
            return load_checkpoint_encoder(folder, options)
    if options.random_init:
        if card.local_architecture is None:
            raise HarnessError(f"model '{spec}': no local architecture to initialise at random (see zoo.py)")
        backbone = build_local_backbone(card)
        return finish_encoder(spec, backbone, card, "random-init", state_dict_sha256(backbone), options.device)
    backbone = build_foreign_backbone(card, spec)
    return finish_encoder(spec, backbone, card, "pretrained", state_dict_sha256(backbone), options.device)


def _load_timm(spec: str, architecture: str, card: ModelCard, options: LoadOptions) -> Encoder:
    if options.random_init:
        backbone = build_timm(architecture, card.timm_kwargs, pretrained=False)
        return finish_encoder(spec, backbone, card_from_timm(backbone, card), "random-init",
                              state_dict_sha256(backbone), options.device)
    try:
        backbone = build_timm(architecture, card.timm_kwargs, pretrained=True)
    except HarnessError:  # already one line (an architecture timm does not have)
        raise
    except Exception as error:  # noqa: BLE001 - every failure becomes one actionable line
        if options.random_fallback:
            backbone = build_timm(architecture, card.timm_kwargs, pretrained=False)
            return finish_encoder(spec, backbone, card_from_timm(backbone, card), "random-init",
                                  state_dict_sha256(backbone), options.device)
        raise HarnessError(explain_weights_failure(spec, card.hub_id, error)) from None
    if card.hub_id and card.revision is None:
        card = card.model_copy(update={"revision": hub_weights_revision(card.hub_id)})
    return finish_encoder(spec, backbone, card_from_timm(backbone, card), "pretrained",
                          state_dict_sha256(backbone), options.device)


HUB_WEIGHT_FILES = ("model.safetensors", "open_clip_model.safetensors", "pytorch_model.bin",
                    "open_clip_pytorch_model.bin")  # what timm reads from an hf-hub repo, in its order


def hub_weights_revision(hub_id: str) -> str | None:
    """The commit whose weights timm has just read from the Hub: the name of the local cache's
    snapshot folder that holds them (the cache keeps one folder per commit). None when it cannot
    be told (the weights came from elsewhere)."""
    from huggingface_hub import try_to_load_from_cache

    from harness.hub_access import is_commit

    repo, _, revision = hub_id.partition("@")
    for filename in HUB_WEIGHT_FILES:
        found = try_to_load_from_cache(repo, filename, revision=revision or None)
        if isinstance(found, str):
            commit = Path(found).parent.name
            return commit if is_commit(commit) else None
    return None


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
    except (TypeError, ValueError, AttributeError, AssertionError) as error:  # a kwarg the architecture refuses
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
    if loader == "transformers" and name == "dinov2":
        from harness.models.foreign import TransformersBackbone

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
            if layer is None:
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


def explain_weights_failure(spec: str, hub_id: str | None, error: Exception) -> str:
    """One actionable line for a model whose weights cannot be fetched."""
    from harness.hub_access import hub_reachable

    kind = type(error).__name__
    page = f"https://huggingface.co/{hub_id}" if hub_id else "the model page on the Hub"
    if kind == "GatedRepoError":
        why = f"the repository is gated: accept its terms at {page} and set HF_TOKEN"
    elif kind == "RepositoryNotFoundError":
        why = "the repository does not exist or is private: check the id, or set HF_TOKEN"
    elif "No pretrained weights" in str(error) or "pretrained" in str(error).lower() and "exist" in str(error):
        why = "timm has no pretrained weights for this name"
    elif not hub_reachable():
        why = "the Hugging Face Hub is unreachable (offline) and the weights are not in the local cache"
    else:
        why = f"could not fetch weights ({kind}: {str(error).splitlines()[0][:160]})"
    return (
        f"model '{spec}': {why}. Options: set HF_TOKEN after accepting the terms at {page}; pass a "
        "local checkpoint directory (--model PATH with card.yaml); or add --random-init to score it untrained"
    )


def build_foreign_backbone(card: ModelCard, spec: str) -> nn.Module:
    """Known models that are not timm models: transformers (DINOv2 family) and CONCH."""
    loader, _, hub_id = (card.architecture or "").partition(":")
    try:
        if loader == "transformers":
            from harness.models.foreign import TransformersBackbone

            return TransformersBackbone(hub_id)
        if loader == "conch":
            from harness.models.foreign import ConchBackbone

            return ConchBackbone(hub_id)
    except ImportError as error:
        raise HarnessError(f"model '{spec}' needs an extra package: {error}") from None
    except Exception as error:  # noqa: BLE001
        raise HarnessError(explain_weights_failure(spec, card.hub_id, error)) from None
    raise HarnessError(f"model '{spec}': unknown loader '{loader}'")
