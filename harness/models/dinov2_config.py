"""The `config.json` of a transformers DINOv2 checkpoint (what `save_pretrained` writes beside the
weights of Phikon-v2, Midnight and models trained on from them), read as untrusted data.

Only the settings that shape the network are kept, each checked for its type and bounds; the rest
of the file (transformers' version, labels, dropouts) is ignored, and nothing in it names code to
run. Torch-free: the leaderboard Space checks a submitted repository's config too.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from harness.bounded_read import read_json
from harness.errors import HarnessError
from harness.models.card import MAX_CONFIG_BYTES

INTEGERS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "image_size", "patch_size")
FLOATS = ("mlp_ratio", "layer_norm_eps", "layerscale_value")
FLAGS = ("qkv_bias", "use_swiglu_ffn", "use_mask_token")
ACTIVATION = re.compile(r"[a-z_]{1,40}")  # hidden_act: a name transformers looks up (gelu, silu, ...)
MAX_INTEGER = 100_000  # far above any ViT; the parameter budget bounds what is built


def read_dinov2_config(path: Path, label: str | None = None) -> dict:
    """The DINOv2 settings of `path`, as Dinov2Config's keyword arguments; a HarnessError naming
    `label` (default the path) when the file is absent, not a DINOv2's config, or out of bounds."""
    where = label or str(path)
    try:
        config = read_json(path, MAX_CONFIG_BYTES, "config.json")
    except FileNotFoundError:
        raise HarnessError(f"{where}: no config.json beside the weights: a transformers DINOv2 is built from the "
                           "config.json that save_pretrained writes with them; copy it there") from None
    except (OSError, ValueError) as error:
        raise HarnessError(f"{where}: cannot read config.json ({error}); it must be the JSON save_pretrained wrote") \
            from None
    if not isinstance(config, dict):
        raise HarnessError(f"{where}: config.json is not a JSON object")
    if config.get("model_type") != "dinov2":
        raise HarnessError(f"{where}: config.json's model_type is {str(config.get('model_type'))[:60]!r}, not 'dinov2': "
                           "architecture transformers:dinov2 builds transformers' Dinov2Model only")
    kept: dict = {}
    for key in (*INTEGERS, *FLOATS, *FLAGS, "hidden_act", "num_channels"):
        if key not in config:
            continue  # Dinov2Config's default
        value = config[key]
        if key in INTEGERS:
            valid = type(value) is int and 0 < value <= MAX_INTEGER
        elif key in FLOATS:
            valid = type(value) in (int, float) and math.isfinite(value) and value >= 0
        elif key in FLAGS:
            valid = type(value) is bool
        elif key == "hidden_act":
            valid = isinstance(value, str) and ACTIVATION.fullmatch(value) is not None
        else:
            valid = value == 3  # tiles are RGB
        if not valid:
            raise HarnessError(f"{where}: config.json key {key!r} is {str(value)[:60]!r}, which no DINOv2 of RGB tiles "
                               "has; it must be the config save_pretrained wrote with the weights")
        kept[key] = value
    return kept


def dinov2_card_hint(path: Path) -> str | None:
    """What to say of a folder or repository without card.yaml whose config.json is a transformers
    DINOv2's; None where it is not one."""
    try:
        config = read_json(path, MAX_CONFIG_BYTES, "config.json")
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or config.get("model_type") != "dinov2":
        return None
    return ("its config.json is a transformers DINOv2's: write card.yaml with `architecture: transformers:dinov2` (the "
            "network is built from config.json), pooling, mean, std, input_size and embed_dim; for Phikon-v2 or "
            "Midnight trained on, `base: phikon-v2` or `base: midnight`")
