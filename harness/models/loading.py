"""A resolved model spec (model_spec.py) -> an encoder: instruments, timm and Hub models, the
zoo's known models, and local checkpoints (checkpoint.py).

Untrusted weights are never unpickled: safetensors, or torch.load(weights_only=True).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from torch import nn

from harness.errors import HarnessError
from harness.models.building import (build_local_backbone, build_timm, card_from_timm, finish_encoder,
                                     state_dict_sha256)
from harness.models.card import ModelCard
from harness.models.encoder import ImageEncoder
from harness.models.instruments import InstrumentEncoder, make_instrument
from harness.models.model_spec import DEFAULT_MODEL, LoadOptions, ModelSpec, resolve_model
from harness.synth.tissue import LATENT_DIM

__all__ = ["DEFAULT_MODEL", "Encoder", "LoadOptions", "load_encoder"]

Encoder = ImageEncoder | InstrumentEncoder


def load_encoder(spec: str | ModelSpec, options: LoadOptions = LoadOptions()) -> Encoder:
    model = resolve_model(spec, options) if isinstance(spec, str) else spec
    if model.source == "instrument":
        return make_instrument(model.spec, LATENT_DIM)
    if model.source == "timm":
        return _load_timm(model.spec, model.spec.removeprefix("timm:"), ModelCard(), options)
    if model.source == "hf-hub":
        return _load_timm(model.spec, model.spec, model.card, options)
    if model.source == "known":
        return _load_known(model.spec, model.card, options)
    from harness.models.checkpoint import load_checkpoint_encoder

    return load_checkpoint_encoder(model.checkpoint, model.card, model.card_path, model.name, model.weights_sha256,
                                   options.device, options.max_parameters)


def _load_known(spec: str, card: ModelCard, options: LoadOptions) -> Encoder:
    loader = (card.architecture or "").split(":", 1)[0]
    if loader == "hf-hub" and not (options.random_init and card.local_architecture):
        return _load_timm(spec, card.architecture, card, options)
    if loader == "builtin":  # colour-stats: a fixed function of the pixels, nothing to load or initialise
        from harness.models.colour_statistics import ColourStatistics

        backbone = ColourStatistics()
        sha = hashlib.sha256(f"{card.architecture}:bins{backbone.num_features}".encode()).hexdigest()
        return finish_encoder(spec, backbone, card, "instrument", sha, options.device)
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
        "local checkpoint directory (a folder with card.yaml, as --model PATH or a distillation teacher); or "
        "take it untrained (harness run --random-init; a teacher's random_init: true, for speed checks)"
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
