"""A model author's files: a tiny ViT checkpoint and its card."""

from pathlib import Path

import torch
from safetensors.torch import save_file

ARCH = "vit_tiny_patch16_224"
CARD = f"name: lab/tiny-fm\narchitecture: {ARCH}\npooling: cls\nembed_dim: 192\n"


def author_files(folder: Path, state: dict, card: str = CARD) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / "model.safetensors"))
    (folder / "card.yaml").write_text(card)
    return folder / "model.safetensors", folder / "card.yaml"


def tiny_fm_state(seed: int = 7) -> dict:
    """The weights of a randomly initialised ARCH (seeded), as a contiguous state dict."""
    import timm

    torch.manual_seed(seed)
    return {k: v.contiguous() for k, v in timm.create_model(ARCH, num_classes=0).state_dict().items()}
