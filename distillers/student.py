"""The student directory: what `harness run --model <dir>` scores like any submitted checkpoint.

  model.safetensors   the student backbone's weights (timm names)
  card.yaml           the same model card a submitted checkpoint carries
  distill.json        teachers, method, nested (Matryoshka) dims, training config and losses
"""

from __future__ import annotations

from pathlib import Path

import yaml
from safetensors.torch import save_file

from harness.atomic_write import atomic_path, write_json_atomic, write_text_atomic


def student_timm_kwargs(architecture: str, input_size: int, extra: dict | None = None) -> dict:
    """What a student of `architecture` is built with beyond timm's defaults: the config's
    `student_kwargs` (e.g. a narrow ConvNeXt's depths and dims), and for ViTs (and DeiTs) the input
    side as img_size (their position embeddings are sized by it)."""
    vit = {"img_size": input_size} if "vit" in architecture or "deit" in architecture else {}
    return {**(extra or {}), **vit}


def write_student(folder: Path, student, config, dim: int, record: dict, method_card: dict | None = None) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in student.backbone.state_dict().items()}
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file(state, str(tmp))
    card = {"name": config.name or folder.name, "architecture": config.student, "pooling": "cls",
            "embed_dim": dim, "input_size": config.student_input_size,
            "notes": f"distilled by pathology-harness ({config.method}) from "
                     + ", ".join(t.model for t in config.teachers),
            "teachers": [t.model for t in config.teachers], "distillation": config.method}
    card.update(method_card or {})  # what the method adds (cross_magnification: the slide_mpp it was taught at)
    kwargs = student_timm_kwargs(config.student, config.student_input_size, config.student_kwargs)
    if kwargs:
        card["timm_kwargs"] = kwargs
    write_text_atomic(folder / "card.yaml", yaml.safe_dump(card, sort_keys=False))
    write_json_atomic(folder / "distill.json", record)
    return folder
