"""The model card that travels with every encoder: how to build it and how to feed it.

Like timm's pretrained_cfg, but with the pooling and embedding dim a benchmark must fix. A
submitted checkpoint carries one (card.yaml); known FMs have one in `zoo.py`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from harness.errors import HarnessError, first_problem
from harness.yaml_files import read_yaml

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Pooling = Literal["cls", "mean-patch", "cls+mean"]
MAX_CARD_BYTES = 64 * 1024  # a card is a few hundred bytes; a larger file is refused unread
# The largest network a card may describe, checked before anything is allocated (building.py): the
# largest pathology FMs are 1.1B (H-optimus, Prov-GigaPath) to 1.9B (Virchow2G). `--max-parameters` raises it.
DEFAULT_MAX_PARAMETERS = 2_500_000_000
MAX_INPUT_SIZE = 1024  # px per side: the largest input a card may ask tiles to be resized to
# The timm_kwargs a card may set: the architecture's shape and layers. Nothing that names a file
# (checkpoint_path, pretrained_cfg_overlay), loads weights or changes what the harness feeds it.
TIMM_KWARGS = frozenset({
    "img_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "qkv_bias", "qk_norm", "init_values",
    "class_token", "no_embed_class", "reg_tokens", "pre_norm", "final_norm", "fc_norm", "global_pool",
    "dynamic_img_size", "dynamic_img_pad", "pos_embed", "mlp_layer", "act_layer", "norm_layer",
    "layer_scale_init_value", "ls_init_value", "depths", "dims", "channels", "output_stride", "drop_rate",
    "drop_path_rate", "stem_type", "stem_width", "base_width", "cardinality", "block_args", "layers",
})
LAYER_KEYS = ("mlp_layer", "act_layer", "norm_layer")  # given by class name, resolved by the loader


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=100)
    base: str | None = Field(None, max_length=100)  # a known model (see `harness list`) whose card this one extends
    architecture: str | None = Field(None, max_length=200)  # timm model name
    timm_kwargs: dict[str, Any] = {}
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input_size: int = Field(224, ge=16, le=MAX_INPUT_SIZE)
    interpolation: Literal["bicubic", "bilinear"] = "bicubic"  # of the resize to input_size
    crop_pct: float = Field(1.0, gt=0, le=1)  # <1: resize to input_size / crop_pct, then centre-crop
    pooling: Pooling = "cls"
    embed_dim: int | None = Field(None, ge=1, le=65536)  # checked against the network when given
    slide_mpp: float | None = Field(None, gt=0.05, le=20)  # um/px it reads slide tiles at (None: the dataset's grid, 0.5)
    hub_id: str | None = Field(None, max_length=200)
    # the architecture built without the Hub (random weights, or a local checkpoint with `base:`):
    # "timm:<name>" with local_kwargs its complete create_model arguments, or "transformers:dinov2"
    # with local_kwargs its Dinov2Config
    local_architecture: str | None = None
    local_kwargs: dict[str, Any] = {}
    revision: str | None = Field(None, max_length=200)  # the Hub commit the weights were read at (a Hub submission)
    licence: str = Field("", max_length=200)
    notes: str = Field("", max_length=2000)
    # lineage of a distilled student (what `harness distill` writes): its teachers and the method
    teachers: list[str] = Field(default_factory=list, max_length=16)
    distillation: str | None = Field(None, max_length=60)
    # the image collections it was pretrained on (e.g. TCGA, GTEx, "proprietary"): results mark the tasks whose
    # images come from one of them; None: not declared (unknown). training_data_source: where that list
    # comes from (paper, model card), or why it is unknown
    training_data: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] | None = Field(
        None, max_length=32)
    training_data_source: str = Field("", max_length=500)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.isprintable() or value.strip(". /") == "" or value != value.strip():
            raise ValueError("must be printable text, not empty, '.', '..' or a path, without surrounding spaces")
        return value

    @field_validator("teachers")
    @classmethod
    def _teacher_names(cls, value: list[str]) -> list[str]:
        if any(len(t) > 300 or not t.isprintable() for t in value):
            raise ValueError("each teacher is a model spec: printable, at most 300 characters")
        return value

    @field_validator("mean", "std")
    @classmethod
    def _finite(cls, value: tuple[float, float, float], info) -> tuple[float, float, float]:
        if not all(math.isfinite(v) for v in value) or (info.field_name == "std" and min(value) <= 0):
            raise ValueError("three finite numbers" + (", each > 0" if info.field_name == "std" else ""))
        return value

    @field_validator("timm_kwargs")
    @classmethod
    def _architecture_only(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - TIMM_KWARGS)
        if unknown:
            raise ValueError(f"'{unknown[0]}' is not an architecture setting a card may give (a card sets the "
                             "network's shape and layers: img_size, patch_size, embed_dim, depth, num_heads, "
                             "mlp_ratio, ...; no file paths or loader options)")
        for key, item in value.items():
            items = item if isinstance(item, (list, tuple)) else [item]
            if len(items) > 16 or not all(isinstance(x, (bool, int, float, str)) or x is None for x in items):
                raise ValueError(f"'{key}' must be a number, text, true/false or a short list of those")
            if any(isinstance(x, str) and len(x) > 100 for x in items):
                raise ValueError(f"'{key}': text longer than 100 characters")
        return value


USER_KEYS = frozenset(ModelCard.model_fields) - {"local_architecture", "local_kwargs"}  # those are the zoo's

# What in a card decides the embeddings: the network it builds, the Hub weights it names, how tiles
# are fed to it and how its tokens are pooled. Its name, licence, notes, lineage, declared training
# data and embed_dim (a check) describe the model and change no number.
NETWORK_KEYS = ("architecture", "timm_kwargs", "local_architecture", "local_kwargs")
EMBEDDING_KEYS = (*NETWORK_KEYS, "hub_id", "revision", "input_size", "mean", "std", "interpolation", "crop_pct",
                  "pooling", "slide_mpp")


def card_sha256(card: ModelCard, keys: tuple[str, ...] = EMBEDDING_KEYS) -> str:
    """sha256 of the card's `keys` (default: all that decide the embeddings), as canonical JSON: a
    result records it, so that a card edited since (another pooling, input size, act_layer) scores
    the model again instead of answering with the result of the model as it was."""
    import hashlib
    import json

    payload = json.dumps(card.model_dump(include=set(keys), mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def read_card(path: Path, label: str | None = None) -> ModelCard:
    """A card file a user or submitter wrote; errors name `label` (default the path). Its size,
    keys and values are bounded before anything is built from it."""
    where = label or str(path)
    try:
        size = Path(path).stat().st_size
    except OSError:
        size = 0  # read_yaml says what is wrong with the path
    if size > MAX_CARD_BYTES:
        raise HarnessError(f"{where}: a model card of {size:,} bytes; a card is a short YAML file (at most "
                           f"{MAX_CARD_BYTES:,} bytes)")
    raw = read_yaml(path, "model card") or {}
    if not isinstance(raw, dict):
        raise HarnessError(f"{where}: a model card is a mapping of keys (architecture, pooling, embed_dim, ...)")
    zoo_only = sorted(set(map(str, raw)) - USER_KEYS & {"local_architecture", "local_kwargs"})
    if zoo_only:
        raise HarnessError(f"{where}: model card key '{zoo_only[0]}': set by the harness's known models only; "
                           "use architecture and timm_kwargs")
    try:
        return ModelCard.model_validate(raw)
    except ValidationError as error:
        loc, message = first_problem(error)
        raise HarnessError(f"{where}: model card key '{'.'.join(loc)}': {message}") from None


TIMM_POOLING = {"token": "cls", "avg": "mean-patch"}  # timm's global_pool -> the card's pooling
MAX_CONFIG_BYTES = 1024 * 1024  # a config.json beside weights (timm's, transformers'): a few kB


def card_from_timm_config(path: Path) -> dict[str, Any] | None:
    """The card a timm `config.json` (what timm's push_to_hub and save_for_hf write, and what
    `huggingface-cli download --local-dir` brings of a timm model) suggests, or None when the file
    is not one. It gives the architecture and the transform (its crop too, as `--model hf-hub:` reads
    the same config); the pooling it suggests is the one the config's global_pool names (cls where it
    names none), which the model's authors may not use."""
    from harness.bounded_read import read_json

    try:
        config = read_json(path, MAX_CONFIG_BYTES, "timm config.json")
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or not isinstance(config.get("architecture"), str):
        return None
    args = config.get("model_args") if isinstance(config.get("model_args"), dict) else {}
    pretrained = config.get("pretrained_cfg") if isinstance(config.get("pretrained_cfg"), dict) else {}
    kwargs = {key: value.rpartition(".")[2] if key in LAYER_KEYS and isinstance(value, str) else value
              for key, value in args.items() if key in TIMM_KWARGS and key != "global_pool"}
    card: dict[str, Any] = {"architecture": config["architecture"][:200], "timm_kwargs": kwargs}
    for key in ("mean", "std"):
        if isinstance(pretrained.get(key), list) and len(pretrained[key]) == 3:
            card[key] = pretrained[key]
    if isinstance(pretrained.get("input_size"), list) and pretrained["input_size"]:
        card["input_size"] = pretrained["input_size"][-1]
    if pretrained.get("interpolation") in ("bicubic", "bilinear"):
        card["interpolation"] = pretrained["interpolation"]
    crop = pretrained.get("crop_pct")
    if isinstance(crop, (int, float)) and 0 < crop < 1:  # the author's eval crop, as `hf-hub:` reads it
        card["crop_pct"] = crop
    card["pooling"] = TIMM_POOLING.get(str(args.get("global_pool", config.get("global_pool"))), "cls")
    if isinstance(config.get("num_features"), int):
        card["embed_dim"] = config["num_features"]
    try:
        ModelCard.model_validate(card)
    except ValidationError:
        return None  # nothing to suggest that a run would take
    return card


def timm_config_hint(path: Path) -> str | None:
    """What to say of a folder or repository without card.yaml whose config.json is timm's: the card
    it implies, as one line of YAML to check and write; None where the file is not timm's config."""
    import yaml

    card = card_from_timm_config(path)
    if card is None:
        return None
    text = yaml.safe_dump(card, default_flow_style=True, width=float("inf"), sort_keys=False).strip()
    return ("its config.json (timm's) gives the architecture but not how the benchmark must pool and feed it; "
            f"write card.yaml, e.g. from that config {text} (check pooling: cls, mean-patch or cls+mean, as the "
            "model's authors pool)")
