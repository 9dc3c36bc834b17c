"""`harness distill --config distill.yaml`: what to distil, into what, on which tiles, how long.

Every key is declared here (unknown keys are errors, as in tasks.yaml).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import HarnessError
from harness.yaml_files import parse_yaml, read_yaml
from harness.registry import first_problem


class TeacherSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str  # any model spec `harness run --model` takes
    weight: float = Field(1.0, gt=0)  # its share of the loss (multi-teacher)
    random_init: bool = False  # untrained teacher weights: for speed measurements only


class DistillConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["feature_kd", "multi_teacher", "logit_kd", "cross_magnification"] = "feature_kd"
    teachers: list[TeacherSpec] = Field(min_length=1)
    student: str = "vit_tiny_patch16_224"  # a timm architecture, trained from scratch
    student_input_size: int = Field(112, ge=16)  # the student's input side (ViTs take img_size)
    dataset: str = "synth-plism"  # a registry dataset: its tiles (cross_magnification: its slides) are the data
    splits: list[str] | None = None  # default: every split of the dataset
    steps: int = Field(300, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(5e-4, ge=0)  # 0 trains nothing: the untrained baseline
    weight_decay: float = Field(0.05, ge=0)
    warmup_steps: int = Field(30, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    augment: bool = True  # flips and 90-degree rotations of the student's input (tissue is orientation-free)
    # cached: teacher summary embeddings computed once (through the embedding cache) and reused for
    #         every view of a tile; CLS-only. online: the frozen teachers embed each batch's view,
    #         and the patch-token term is trained too (feature_kd, multi_teacher; not instruments)
    teacher_forward: Literal["cached", "online"] = "cached"
    fit_tiles: int = Field(1024, ge=1)  # online: training tiles the teachers' PHI-S statistics are fitted on
    # nested dims, e.g. [32, 64, 128], each below the student's embedding dim; [] = off
    matryoshka_dims: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list)
    adaptor_hidden: int = Field(256, ge=1)
    tau: float = Field(2.0, gt=0)  # logit_kd temperature
    alpha: float = Field(0.5, ge=0, le=1)  # logit_kd: weight of the label cross-entropy
    label_dataset: str = "synth-tiles"  # logit_kd: where the teachers' task heads are fitted
    # cross_magnification: the student reads slides at student_mpp (a whole multiple of the
    # dataset's grid mpp); its tile covers a k x k block of teacher tiles
    student_mpp: float = Field(2.0, gt=0)
    patch_weight: float = Field(1.0, ge=0)  # lambda of the patch-token term (online) / the spatial term (cross_magnification)
    region_stride: int = Field(1, ge=1)  # training blocks start every this many grid tiles (1: all overlapping blocks)
    min_region_tiles: int = Field(4, ge=1)  # a block needs this many tissue tiles to be a training region
    checkpoint_every: int = Field(50, ge=1)
    seed: int = 0
    name: str | None = None  # the student's model name (default: the output folder's name)


def read_config(path: Path | None, teachers: list[str] | None = None, settings: list[str] | None = None
                ) -> DistillConfig:
    """The config file (optional), then flags over it: `--teacher MODEL` (repeatable) replaces the
    teachers, `--set KEY=VALUE` (a YAML value: `--set matryoshka_dims=[32,64]`) sets one key."""
    raw: dict = {}
    if path is not None:
        raw = read_yaml(Path(path), "distillation config") or {}
        if not isinstance(raw, dict):
            raise HarnessError(f"{path}: a distillation config is a mapping of keys (see distillers/config.py)")
    for item in settings or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise HarnessError(f"--set {item}: expected KEY=VALUE, e.g. --set steps=100")
        raw[key.strip()] = parse_yaml(value, f"--set {item}")
    if teachers:
        raw["teachers"] = [{"model": model} for model in teachers]
    where = " + ".join([*([str(path)] if path is not None else []), *(["flags"] if settings or teachers else [])])
    try:
        return DistillConfig.model_validate(raw)
    except ValidationError as error:
        loc, message = first_problem(error)
        raise HarnessError(f"{where}: key '{'.'.join(loc)}': {message}") from None
