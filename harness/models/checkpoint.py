"""A local checkpoint: weights + model card, as a model author submits them.

Layout: a directory holding `card.yaml` and one weights file (`model.safetensors` preferred;
`*.safetensors`, `pytorch_model.bin`, `*.pt`, `*.pth`, `*.ckpt`) or safetensors shards with their
index (`model.safetensors.index.json`, as save_torch_state_dict writes a large model), or a weights
file or index with a `card.yaml` beside it (found by weight_files.py, without torch). Weights are untrusted:
safetensors is read as tensors only; torch files go through torch.load(weights_only=True), which
refuses pickled code. A training loop's checkpoint is read where its backbone is: under its
`state_dict`, `model` or `teacher` entry, below a wrapper prefix (`module.`, ...), or below the one
key prefix that holds the whole architecture beside the loop's other parts (heads, a loss's buffers).
"""

from __future__ import annotations

from pathlib import Path

import torch
from rich.markup import escape

from harness.errors import HarnessError
from harness.models.card import DEFAULT_MAX_PARAMETERS, ModelCard
from harness.models.building import build_timm, check_architecture_budget, finish_encoder
from harness.models.dinov2_keys import from_dinov2_layout
from harness.models.encoder import ImageEncoder
from harness.models.weight_files import SHARD_INDEX, read_shard_index
from harness.models.zoo import TRANSFORMERS_DINOV2, resolve_card  # noqa: F401 - defined in the zoo (torch-free); callers import it here too
from harness.terminal import console

HEAD_PREFIXES = ("head.", "fc.", "classifier.", "head_dist.")
WRAPPER_PREFIXES = ("module.", "model.", "backbone.", "encoder.")


def load_torch_file(weights: Path):
    """torch.load(weights_only=True), its tensors mapped from the file (as safetensors' are) where
    the file is torch.save's zip format: the weights are then pages of the file, not a second copy
    in memory beside the network they are loaded into (benchmarks/checkpoint_load.py). The legacy
    format cannot be mapped and is read whole."""
    import zipfile

    mapped = zipfile.is_zipfile(weights)
    return torch.load(weights, map_location="cpu", weights_only=True, mmap=mapped)


def read_state_dict(weights: Path) -> dict[str, torch.Tensor]:
    """Tensors only, from safetensors (one file, or the shards a shard index names) or a
    weights-only torch file; never executes a pickle."""
    state = read_shards(weights) if weights.name.endswith(SHARD_INDEX) else _read_tensors(weights)
    for key in ("state_dict", "model", "teacher"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise HarnessError(f"{weights}: the checkpoint is not a state dict of tensors")
    for prefix in WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def read_shards(index: Path) -> dict[str, torch.Tensor]:
    """The tensors of the shards an index names, each shard holding exactly the tensors the index
    assigns it (an index and shards of two different saves would otherwise mix two networks)."""
    state: dict[str, torch.Tensor] = {}
    for name, keys in read_shard_index(index).items():
        tensors = _read_tensors(index.parent / name)  # read_shard_index admits .safetensors names only
        missing, unlisted = sorted(set(keys) - set(tensors)), sorted(set(tensors) - set(keys))
        if missing or unlisted:
            parts = [f"{len(missing)} listed but absent (e.g. {missing[0]})"] if missing else []
            parts += [f"{len(unlisted)} not in the index (e.g. {unlisted[0]})"] if unlisted else []
            raise HarnessError(f"{index}: {name} does not hold the tensors the index assigns it ({'; '.join(parts)}): "
                               "the index and the shards are of different saves; save the weights again")
        state.update(tensors)
    return state


def _read_tensors(weights: Path):
    try:
        if weights.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(weights))
        return load_torch_file(weights)
    except Exception as error:  # noqa: BLE001 - corrupt, truncated or malicious files all land here
        import pickle

        if isinstance(error, pickle.UnpicklingError) or "Weights only load failed" in str(error):
            # torch's own hint (re-run with weights_only=False) would switch the protection off: not that
            raise HarnessError(
                f"{weights}: the file holds pickled Python objects besides tensors (loading it could run code), so "
                "it is never loaded; where you trust it, convert it: safetensors.torch.save_file("
                "model.state_dict(), 'model.safetensors')") from None
        first_line = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise HarnessError(
            f"{weights}: cannot read this checkpoint as tensors ({first_line}); "
            "save the weights with safetensors.torch.save_file(model.state_dict(), 'model.safetensors')"
        ) from None


def backbone_prefixes(state: dict[str, torch.Tensor], expected: list[str]) -> list[str]:
    """The key prefixes under which `state` holds every key the architecture expects: a training
    checkpoint keeps its backbone beside other parts (Lightning's `model.backbone.` and `model.head.`,
    DINO's `teacher.backbone.` and `teacher.dino_head.`, its student beside its teacher)."""
    if not expected:
        return []
    anchor = expected[0]
    prefixes = {key[: len(key) - len(anchor)] for key in state
                if key.endswith(anchor) and (key == anchor or key[-len(anchor) - 1] == ".")}
    return sorted(p for p in prefixes if all(p + key in state for key in expected))


def load_state_strictly(backbone: torch.nn.Module, state: dict[str, torch.Tensor], weights: Path, architecture: str) -> None:
    """Every backbone key must be present with the right shape; classifier heads are ignored. A
    backbone found whole under one prefix is read from there, its other tensors left out (said); under
    that prefix the same rule holds, so a deeper network's extra blocks are still refused."""
    expected = backbone.state_dict()
    if any(key not in state for key in expected):  # the DINOv2 training code's names first (dinov2_keys.py)
        state, renamed = from_dinov2_layout(state, set(expected))
        if renamed:
            console.print(f"note: {escape(str(weights))}: read as DINOv2's training code saves a ViT: "
                          f"{escape('; '.join(renamed))}")
    if any(key not in state for key in expected):
        prefixes = [p for p in backbone_prefixes(state, list(expected)) if p]
        if len(prefixes) > 1:
            raise HarnessError(
                f"{weights}: the checkpoint holds the whole '{architecture}' under {len(prefixes)} prefixes "
                f"({', '.join(repr(p) for p in prefixes[:4])}): save the one to score on its own, e.g. "
                f"{{k[len({prefixes[0]!r}):]: v for k, v in state.items() if k.startswith({prefixes[0]!r})}}")
        if prefixes:
            inside = {key[len(prefixes[0]):]: value for key, value in state.items() if key.startswith(prefixes[0])}
            console.print(f"note: {escape(str(weights))}: the backbone is read under '{escape(prefixes[0])}' "
                          f"({len(state) - len(inside)} other tensors of the checkpoint left out)")
            state = inside
    state = {k: v for k, v in state.items() if not (k.startswith(HEAD_PREFIXES) and k not in expected)}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong_shape:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {keys[0]})")
        raise HarnessError(
            f"{weights}: keys do not match architecture '{architecture}': {', '.join(parts)}; "
            "check 'architecture' and 'timm_kwargs' in card.yaml"
        )
    # load_state_dict casts whatever it is given: the int8 tensors of a quantised checkpoint would
    # load as rounded floats and be scored as the model (a float of another width is only converted)
    wrong_kind = [k for k in expected if _kind(state[k].dtype) != _kind(expected[k].dtype)]
    if wrong_kind:
        key = wrong_kind[0]
        given, wanted = (str(t.dtype).removeprefix("torch.") for t in (state[key], expected[key]))
        raise HarnessError(
            f"{weights}: {len(wrong_kind)} of {len(expected)} tensors hold another kind of number than "
            f"'{architecture}' has (e.g. {key} is {given}, not {wanted}); save the float weights before "
            "quantising: safetensors.torch.save_file(model.state_dict(), 'model.safetensors')"
        )
    backbone.load_state_dict(state, strict=True)


def load_transformers_dinov2(state: dict[str, torch.Tensor], card: ModelCard, weights: Path) -> torch.nn.Module:
    """A transformers DINOv2 (Phikon-v2, Midnight, their fine-tunes) with a checkpoint's weights:
    the tensors read here (never a pickle) loaded as transformers loads save_pretrained's files (it
    renames the key names of its earlier versions) into the network of the config.json beside them
    (the card's local_kwargs: zoo.resolve_card); every key there, none left over but a classifier
    head, each of its shape and kind of number."""
    from transformers import Dinov2Config, Dinov2Model
    from transformers.utils import logging as transformers_logging

    from harness.models.foreign import TransformersBackbone

    integers = [key for key, tensor in state.items() if _kind(tensor.dtype) != "floating"]
    if integers:  # every tensor of a DINOv2 is floating; transformers would cast these to rounded floats
        raise HarnessError(f"{weights}: {len(integers)} tensors hold another kind of number than the floats of a "
                           f"DINOv2 (e.g. {integers[0]} is {str(state[integers[0]].dtype).removeprefix('torch.')}); save "
                           "the float weights before quantising")
    verbosity, bars = transformers_logging.get_verbosity(), transformers_logging.is_progress_bar_enabled()
    transformers_logging.set_verbosity_error()  # its load report and progress bar: the keys are checked below
    transformers_logging.disable_progress_bar()
    try:
        model, info = Dinov2Model.from_pretrained(None, config=Dinov2Config(**card.local_kwargs), state_dict=state,
                                                  output_loading_info=True, dtype=torch.float32)
    except Exception as error:  # noqa: BLE001 - a size mismatch is a RuntimeError, with a table logged above it
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise HarnessError(f"{weights}: transformers cannot load these weights into the DINOv2 of config.json: {first}; "
                           "the weights and config.json must be those save_pretrained wrote together") from None
    finally:
        transformers_logging.set_verbosity(verbosity)
        if bars:
            transformers_logging.enable_progress_bar()
    missing = list(info["missing_keys"])
    unexpected = [key for key in info["unexpected_keys"] if not key.startswith(HEAD_PREFIXES)]
    mismatched = [str(entry[0] if isinstance(entry, (tuple, list)) else entry) for entry in info["mismatched_keys"]]
    if missing or unexpected or mismatched:
        parts = [f"{len(keys)} {label} (e.g. {keys[0]})" for label, keys in
                 (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)) if keys]
        raise HarnessError(f"{weights}: keys do not match the DINOv2 of config.json: {', '.join(parts)}; the weights and "
                           "config.json must be those save_pretrained wrote together")
    return TransformersBackbone(model=model.eval())


def _kind(dtype: torch.dtype) -> str:
    """floating, complex, bool or integer: what a tensor's numbers are, whatever their width."""
    if dtype.is_floating_point:
        return "floating"
    if dtype.is_complex:
        return "complex"
    return "bool" if dtype == torch.bool else "integer"


def load_checkpoint_encoder(weights: Path, card: ModelCard, card_path: Path, name: str, sha256: str,
                            device: str, max_parameters: int = DEFAULT_MAX_PARAMETERS) -> ImageEncoder:
    """The encoder of a located checkpoint (model_spec.resolve_model found its files, read its card
    and knows its name and hash). The card's architecture is sized on the meta device first."""
    card = resolve_card(card, card_path)
    check_architecture_budget(card, str(card_path), max_parameters)
    state = read_state_dict(weights)
    if card.architecture == TRANSFORMERS_DINOV2:
        backbone = load_transformers_dinov2(state, card, weights)
    else:
        backbone = build_timm(card.architecture, card.timm_kwargs, pretrained=False)
        load_state_strictly(backbone, state, weights, card.architecture)
    return finish_encoder(name, backbone, card, "checkpoint", sha256, device)
