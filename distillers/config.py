"""`harness distill --config distill.yaml`: what to distil, into what, on which tiles, how long.

Every key is declared here (unknown keys are errors, as in tasks.yaml).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.errors import HarnessError, first_problem
from harness.yaml_files import parse_yaml, read_yaml
from harness.distillers.method import METHODS
from harness.distillers.view_jitter import ViewJitter


StudentKwarg = int | float | bool | str | list[int] | list[float]  # what a timm constructor argument may be


class TeacherSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str  # any model spec `harness run --model` takes
    weight: float = Field(1.0, gt=0)  # its share of the loss (multi-teacher)
    random_init: bool = False  # untrained teacher weights: for speed measurements only


class DistillConfig(BaseModel):
    """The settings every method shares (the training loop's), plus `params`: the method's own
    settings, declared by its `Params` (distillers/method.py). A method's keys may also be written
    at the top level (`tau: 3`, `--set tau=3`): they are moved into `params`."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    method: str = "feature_kd"  # a registered method (distillers/__init__.py)
    teachers: list[TeacherSpec] = Field(min_length=1)
    student: str = "vit_tiny_patch16_224"  # a timm architecture, trained from scratch
    student_input_size: int = Field(112, ge=16, le=1024)  # the student's input side (ViTs take img_size); a tile's, not a slide's
    # keyword arguments of the student's timm constructor, e.g. {depths: [1,1,1,1], dims: [16,32,48,64]}
    # for a 92k-parameter convnext_atto; recorded in the student's card (timm_kwargs)
    student_kwargs: dict[str, StudentKwarg] = Field(default_factory=dict)
    # a registry dataset: its tiles (cross_magnification: its slides) are the data. By default tiles no
    # task scores (a student's retention is then about images it never saw; distillers/scoring.py)
    dataset: str = "synth-distill-mixed"
    splits: list[str] | None = None  # default: every split of the dataset
    steps: int = Field(300, ge=1)
    batch_size: int = Field(32, ge=1, le=16384)  # a larger batch would hold a whole dataset at once
    lr: float = Field(5e-4, ge=0)  # 0 trains nothing: the untrained baseline
    weight_decay: float = Field(0.05, ge=0)
    warmup_steps: int = Field(30, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    augment: bool = True  # flips and 90-degree rotations of the student's input (tissue is orientation-free)
    # colour and optics jitter of the student's view only (stain, gamma, blur; distillers/view_jitter.py)
    jitter: ViewJitter = Field(default_factory=ViewJitter)
    checkpoint_every: int = Field(50, ge=1)
    seed: int = 0
    name: str | None = None  # the student's model name (default: the output folder's name)
    params: dict[str, Any] = {}  # the method's own settings (see its Params)

    @model_validator(mode="before")
    @classmethod
    def _method_keys_into_params(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        method = METHODS.get(raw.get("method", "feature_kd"))
        own = set(method.Params.model_fields) if method else set()
        lifted = {key: value for key, value in raw.items() if key in own and key not in cls.model_fields}
        if not lifted:
            return raw
        rest = {key: value for key, value in raw.items() if key not in lifted}
        return {**rest, "params": {**lifted, **(raw.get("params") or {})}}

    @field_validator("method")
    @classmethod
    def _registered(cls, name: str) -> str:
        if name not in METHODS:
            raise ValueError(f"unknown method '{name}' (one of: {', '.join(METHODS)})")
        return name

    @property
    def method_params(self) -> BaseModel:
        """`params` validated by the method's Params (read_config reports a bad key with its file)."""
        return METHODS[self.method].Params.model_validate(self.params)


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
        config = DistillConfig.model_validate(raw)
        config.method_params  # noqa: B018 - validated now, so that a bad key is named with its file
    except ValidationError as error:
        loc, message = first_problem(error)
        key = loc[-1] if loc else ""
        owners = [name for name, method in METHODS.items() if key in method.Params.model_fields]
        if message.startswith("unknown key") and owners:
            message = f"a setting of {' and '.join(owners)}, not of {raw.get('method', 'feature_kd')}"
        raise HarnessError(f"{where}: key '{'.'.join(loc)}': {message}") from None
    return config
