"""Which files of a checkpoint hold its weights; torch-free, so that the leaderboard Space can
check a Hub repository's files as the backend will read them."""

from __future__ import annotations

import re

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
