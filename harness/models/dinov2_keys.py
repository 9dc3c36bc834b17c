"""A checkpoint of the DINOv2 training code (facebookresearch/dinov2, with which most pathology FMs
were pretrained) read into timm's ViT: the same network under other names.

Its teacher's backbone differs from timm's ViT in four ways, each an exact renaming or identity:
- `mask_token`: iBOT's masked-patch embedding, used in training only; a ViT that scores has none.
- `blocks.<chunk>.<i>.`: blocks grouped in chunks for FSDP (`block_chunks`), each keeping its global
  index `i` (the chunks are padded with identities): `blocks.<i>.`.
- `mlp.w12` / `mlp.w3`: its SwiGLU's packed input and output projections, timm's `mlp.fc1` / `mlp.fc2`
  (SwiGLUPacked).
- `register_tokens`: timm keeps registers as `reg_token` outside the position embedding
  (no_embed_class), so the class token takes its position embedding in and `pos_embed` drops it.
The last three are what timm itself does when it loads DINOv2's weights (its `_convert_dinov2`,
against which tests/harness/test_models.py checks this module); the chunks are DINOv2's BlockChunk.
Each is applied only where the architecture has no key of that name, under any key prefix.
"""

from __future__ import annotations

import re

import torch

CHUNKED_BLOCK = re.compile(r"((?:^|.*\.)blocks)\.\d+\.(\d+\..+)")  # <prefix>blocks.<chunk>.<i>.<rest>
SWIGLU = re.compile(r"((?:^|.*\.)blocks\.\d+\.mlp)\.(w12|w3)\.(weight|bias)")
TIMM_SWIGLU = {"w12": "fc1", "w3": "fc2"}


def from_dinov2_layout(state: dict[str, torch.Tensor], expected: set[str]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """`state` with DINOv2's key names as timm's ViT (`expected`, its state-dict keys) names them, and
    what was changed (empty where nothing was: a checkpoint that is not DINOv2's is returned as is)."""
    done: list[str] = []
    if any(CHUNKED_BLOCK.fullmatch(key) for key in state) and not any(CHUNKED_BLOCK.fullmatch(k) for k in expected):
        state = {_unchunked(key): value for key, value in state.items()}
        done.append("blocks.<chunk>.<i> read as blocks.<i>")
    if any(SWIGLU.fullmatch(key) for key in state) and not any(SWIGLU.fullmatch(k) for k in expected):
        state = {SWIGLU.sub(lambda m: f"{m[1]}.{TIMM_SWIGLU[m[2]]}.{m[3]}", key): value for key, value in state.items()}
        done.append("mlp.w12/w3 read as mlp.fc1/fc2")
    masks = [key for key in state if key.rpartition(".")[2] == "mask_token" and key not in expected]
    if masks and "mask_token" not in expected:
        state = {key: value for key, value in state.items() if key not in masks}
        done.append("mask_token (training only) left out")
    registers = [key for key in state if key.rpartition(".")[2] == "register_tokens"]
    if registers and "reg_token" in expected and "register_tokens" not in expected:
        state = dict(state)
        for key in registers:
            prefix = key[: -len("register_tokens")]
            if prefix + "cls_token" in state and prefix + "pos_embed" in state:
                state[prefix + "reg_token"] = state.pop(key)
                state[prefix + "cls_token"] = state[prefix + "cls_token"] + state[prefix + "pos_embed"][:, 0]
                state[prefix + "pos_embed"] = state[prefix + "pos_embed"][:, 1:]
        done.append("register_tokens read as reg_token (the class token takes its position embedding)")
    return state, done


def _unchunked(key: str) -> str:
    match = CHUNKED_BLOCK.fullmatch(key)
    return f"{match[1]}.{match[2]}" if match else key
