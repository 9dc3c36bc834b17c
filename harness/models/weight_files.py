"""Which files of a checkpoint hold its weights and its card; torch-free, so that the leaderboard
Space can check a Hub repository's files as the backend will read them, and a rerun that reuses a
local checkpoint's results finds them without importing torch."""

from __future__ import annotations

import re
from pathlib import Path

from harness.errors import HarnessError
from harness.models.card import timm_config_hint

SHARD = re.compile(r".+-\d{5}-of-\d{5}\.safetensors")  # save_pretrained / save_torch_state_dict's shard names
MERGE_SHARDS = ("merge them into one file: python -c \"import glob; from safetensors.torch import load_file, "
                "save_file; s = {}; [s.update(load_file(f)) for f in sorted(glob.glob('*-of-*.safetensors'))]; "
                "save_file(s, 'model.safetensors')\"")


def sharded_weights(names: list[str]) -> list[str]:
    """The shards among a checkpoint's file names, when its weights are split over several files
    and no model.safetensors holds them whole (the harness reads one weights file); [] otherwise."""
    if "model.safetensors" in names:
        return []
    shards = sorted(name for name in names if SHARD.fullmatch(name))
    index = any(name.endswith(".safetensors.index.json") for name in names)
    return shards if len(shards) > 1 or (shards and index) else []


WEIGHT_PATTERNS = ("model.safetensors", "*.safetensors", "pytorch_model.bin", "*.pt", "*.pth", "*.bin",
                   "*.ckpt")  # last: a training loop's checkpoint (Lightning's), where no other file is
CARD_NAMES = ("card.yaml", "card.yml", "model_card.yaml")


def find_weights(path: Path) -> Path:
    """The weights file of a checkpoint: the file itself, or the first match in a directory."""
    if path.is_dir():
        shards = sharded_weights([f.name for f in path.iterdir()])
        if shards:  # the first shard alone would load as "N missing keys", which misleads
            raise HarnessError(f"{path}: the weights are split over {len(shards)} files ({shards[0]}, ...); the "
                               f"harness reads one: {MERGE_SHARDS}")
        weights = next((f for pattern in WEIGHT_PATTERNS for f in sorted(path.glob(pattern)) if f.is_file()), None)
        if weights is None:
            raise HarnessError(f"{path}: no weights file (model.safetensors, *.safetensors, *.bin, *.pt, *.pth, *.ckpt) "
                               "in this directory")
        return weights
    if path.is_file():
        return path
    raise HarnessError(f"{path}: no such file or directory")


def locate_checkpoint(path: Path) -> tuple[Path, Path]:
    """(weights file, card file) for a checkpoint directory or a weights file."""
    folder = path if path.is_dir() else path.parent
    weights = find_weights(path)
    card = next((folder / name for name in CARD_NAMES if (folder / name).is_file()), None)
    if card is None:
        hint = timm_config_hint(folder / "config.json")
        if hint is not None:  # a timm model saved for, or downloaded from, the Hub
            raise HarnessError(f"{folder}: no card.yaml beside the weights; {hint}, or `base: <name>` where these "
                               "are a known model's weights (harness list)")
        raise HarnessError(
            f"{folder}: no card.yaml beside the weights: write one with architecture (a timm name), "
            "pooling, mean, std, input_size and embed_dim"
        )
    return weights, card
