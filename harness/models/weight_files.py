"""Which files of a checkpoint hold its weights and its card; torch-free, so that the leaderboard
Space can check a Hub repository's files as the backend will read them, and a rerun that reuses a
local checkpoint's results finds them without importing torch."""

from __future__ import annotations

import json
import re
from pathlib import Path

from harness.bounded_read import read_regular_file
from harness.errors import HarnessError
from harness.models.card import timm_config_hint
from harness.models.dinov2_config import dinov2_card_hint

SHARD = re.compile(r".+-\d{5}-of-(\d{5})\.safetensors")  # save_pretrained / save_torch_state_dict's shard names
SHARD_INDEX = ".safetensors.index.json"  # the index they write beside the shards: tensor name -> shard file
SHARD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}\.safetensors")  # a file beside the index, no path
MAX_INDEX_BYTES = 16 * 1024 * 1024  # a 2.5B-parameter model's index is well under 1 MB
MAX_SHARDS = 1000
MAX_KEY_CHARS = 1024
MERGE_SHARDS = ("merge them into one file: python -c \"import glob; from safetensors.torch import load_file, "
                "save_file; s = {}; [s.update(load_file(f)) for f in sorted(glob.glob('*-of-*.safetensors'))]; "
                "save_file(s, 'model.safetensors')\"")


def sharded_weights(names: list[str]) -> list[str]:
    """The shards among a checkpoint's file names, when its weights are split over several files
    and no model.safetensors holds them whole; [] otherwise."""
    if "model.safetensors" in names:
        return []
    shards = sorted(name for name in names if SHARD.fullmatch(name))
    index = any(name.endswith(SHARD_INDEX) for name in names)
    return shards if len(shards) > 1 or (shards and index) else []


def shard_index_name(names: list[str], where: str) -> str | None:
    """The index of a checkpoint whose weights are split over shards (None where they are not); a
    HarnessError naming `where` when the shards have no index, or several."""
    shards = sharded_weights(names)
    if not shards:
        return None
    indexes = sorted(name for name in names if name.endswith(SHARD_INDEX))
    if not indexes:
        raise HarnessError(f"{where}: the weights are split over {len(shards)} files ({shards[0]}, ...) and no "
                           f"model{SHARD_INDEX} says which tensor each holds: add the index that "
                           f"save_torch_state_dict wrote beside them, or {MERGE_SHARDS}")
    if len(indexes) > 1:
        raise HarnessError(f"{where}: {len(indexes)} shard indexes ({', '.join(indexes[:3])}): keep the one of "
                           "the weights to score")
    return indexes[0]


def parse_shard_index(data: bytes, where: str) -> dict[str, list[str]]:
    """An index's weight map as {shard file: [tensor names]}, shards in name order. The index is
    untrusted: every shard must be a plain `.safetensors` file name (no folder, nothing hidden), and
    its size, shard count and names are bounded."""
    if len(data) > MAX_INDEX_BYTES:
        raise HarnessError(f"{where}: a shard index of more than {MAX_INDEX_BYTES:,} bytes; an index lists tensor "
                           "names, far less")
    try:
        weight_map = json.loads(data.decode("utf-8")).get("weight_map")
    except (UnicodeDecodeError, ValueError, RecursionError, AttributeError):
        raise HarnessError(f"{where}: not a shard index (JSON with a 'weight_map' of tensor name -> shard file); "
                           "save the weights again with save_torch_state_dict") from None
    if not isinstance(weight_map, dict) or not weight_map:
        raise HarnessError(f"{where}: its 'weight_map' is not a non-empty mapping of tensor name -> shard file")
    shards: dict[str, list[str]] = {}
    for key, shard in weight_map.items():
        if not isinstance(shard, str) or not SHARD_NAME.fullmatch(shard) or len(key) > MAX_KEY_CHARS:
            raise HarnessError(f"{where}: 'weight_map' maps {str(key)[:80]!r} to {str(shard)[:80]!r}; each tensor must "
                               "map to a .safetensors file beside the index (a file name, no folder)")
        shards.setdefault(shard, []).append(key)
    if len(shards) > MAX_SHARDS:
        raise HarnessError(f"{where}: the index names {len(shards):,} shards, more than {MAX_SHARDS:,}")
    return dict(sorted(shards.items()))


def read_shard_index(index: Path) -> dict[str, list[str]]:
    """parse_shard_index of a local index, each shard it names a regular file beside it."""
    try:
        data = read_regular_file(index, MAX_INDEX_BYTES)
    except OSError as error:
        raise HarnessError(f"{index}: cannot read the shard index ({error.strerror or error})") from None
    shards = parse_shard_index(data, str(index))
    absent = [name for name in shards if not (index.parent / name).is_file()]
    if absent:
        raise HarnessError(f"{index}: the index names {len(absent)} shard(s) that are not beside it (e.g. "
                           f"{absent[0]}); copy every shard of the checkpoint into {index.parent}")
    return shards


def weight_parts(weights: Path) -> list[Path]:
    """The files that hold a checkpoint's weights: the weights file, or a shard index and its shards."""
    if weights.name.endswith(SHARD_INDEX):
        return [weights, *(weights.parent / name for name in read_shard_index(weights))]
    return [weights]


WEIGHT_PATTERNS = ("model.safetensors", "*.safetensors", "pytorch_model.bin", "*.pt", "*.pth", "*.bin",
                   "*.ckpt")  # last: a training loop's checkpoint (Lightning's), where no other file is
CARD_NAMES = ("card.yaml", "card.yml", "model_card.yaml")


def find_weights(path: Path) -> Path:
    """The weights file of a checkpoint: the file itself, or in a directory its shard index where the
    weights are split over shards, else the first match of WEIGHT_PATTERNS."""
    if path.is_dir():
        index = shard_index_name([f.name for f in path.iterdir()], str(path))
        if index is not None:  # the first shard alone would load as "N missing keys", which misleads
            return path / index
        weights = next((f for pattern in WEIGHT_PATTERNS for f in sorted(path.glob(pattern)) if f.is_file()), None)
        if weights is None:
            raise HarnessError(f"{path}: no weights file (model.safetensors, *.safetensors, *.bin, *.pt, *.pth, *.ckpt) "
                               "in this directory")
        return weights
    if path.is_file():
        shard = SHARD.fullmatch(path.name)
        if shard and int(shard.group(1)) > 1:
            raise HarnessError(f"{path}: one shard of {int(shard.group(1))}; give the folder that holds them all with "
                               f"their index (model{SHARD_INDEX}), or the index itself")
        return path
    raise HarnessError(f"{path}: no such file or directory")


def locate_checkpoint(path: Path) -> tuple[Path, Path]:
    """(weights file, card file) for a checkpoint directory or a weights file."""
    folder = path if path.is_dir() else path.parent
    weights = find_weights(path)
    card = next((folder / name for name in CARD_NAMES if (folder / name).is_file()), None)
    if card is None:
        hint = timm_config_hint(folder / "config.json") or dinov2_card_hint(folder / "config.json")
        if hint is not None:  # a timm model saved for, or downloaded from, the Hub
            raise HarnessError(f"{folder}: no card.yaml beside the weights; {hint}, or `base: <name>` where these "
                               "are a known model's weights (harness list)")
        raise HarnessError(
            f"{folder}: no card.yaml beside the weights: write one with architecture (a timm name), "
            "pooling, mean, std, input_size and embed_dim"
        )
    return weights, card
