"""Known pathology foundation models: Hub id, how to build them, transform, pooling, dim.

Taken from each model's card on the Hub. Most are gated: accept the terms on the model page
and set HF_TOKEN, or download the weights once and pass a local checkpoint directory whose
card.yaml says `base: <name>`.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import HarnessError
from harness.models.card import IMAGENET_MEAN, IMAGENET_STD, ModelCard

SYNTHETIC_TRAINING = "trained on this harness's procedural tiles of other seeds (harness/synth/)"
HOPTIMUS_MEAN = (0.707223, 0.578729, 0.703617)
HOPTIMUS_STD = (0.211883, 0.230117, 0.177517)
# Values that YAML cannot hold are written as names and resolved by the loader.
SWIGLU = {"mlp_layer": "SwiGLUPacked", "act_layer": "SiLU"}
UNI2_H = {"img_size": 224, "patch_size": 14, "depth": 24, "num_heads": 24, "init_values": 1e-5, "embed_dim": 1536,
          "mlp_ratio": 5.33334, "no_embed_class": True, "reg_tokens": 8, "dynamic_img_size": True, **SWIGLU}
# a network built by transformers, not timm (building.build_local_backbone): transformers' Dinov2Model, as
# Phikon-v2 and Midnight are; a checkpoint's (save_pretrained's files) takes its config.json's settings
TRANSFORMERS_DINOV2 = "transformers:dinov2"
HOPTIMUS = {"img_size": 224, "init_values": 1e-5, "dynamic_img_size": False}

KNOWN_MODELS: dict[str, ModelCard] = {
    card.name: card
    for card in [
        ModelCard(name="colour-stats", architecture="builtin:colour-stats", mean=(0.0, 0.0, 0.0),
                  std=(1.0, 1.0, 1.0), input_size=64, pooling="mean-patch", embed_dim=30, licence="Apache-2.0",
                  notes="no weights: per-channel colour mean, std and 8-bin histogram (a colour-only baseline)",
                  training_data=[], training_data_source="no training: a fixed function of the pixels"),
        ModelCard(name="synth-reference", architecture="package:data/synth-reference", pooling="mean-patch",
                  embed_dim=160, licence="Apache-2.0",
                  notes="a 577k-parameter CNN trained on synthetic tiles of another seed "
                        "(harness/synth/reference_training.py): the trained reference of the synthetic bracket",
                  training_data=["synthetic, other seeds"], training_data_source=SYNTHETIC_TRAINING),
        ModelCard(name="synth-teacher-tissue", architecture="package:data/synth-teacher-tissue", pooling="mean-patch",
                  embed_dim=320, input_size=112, licence="Apache-2.0",
                  notes="a 1.6M-parameter CNN trained on the six synthetic tissues only, reading 112 px "
                        "(harness/synth/teacher_training.py): the tissue-and-context teacher of the distillation study",
                  training_data=["synthetic, other seeds"], training_data_source=SYNTHETIC_TRAINING),
        ModelCard(name="synth-teacher-nuclei", architecture="package:data/synth-teacher-nuclei", pooling="mean-patch",
                  embed_dim=320, licence="Apache-2.0",
                  notes="a 1.6M-parameter CNN trained on nuclear grade and mitoses of synthetic tumour tiles only "
                        "(harness/synth/teacher_training.py): the nuclear-morphology teacher of the distillation study",
                  training_data=["synthetic, other seeds"], training_data_source=SYNTHETIC_TRAINING),
        ModelCard(name="uni", hub_id="MahmoodLab/UNI", architecture="hf-hub:MahmoodLab/UNI",
                  timm_kwargs={"init_values": 1e-5, "dynamic_img_size": True},
                  mean=IMAGENET_MEAN, std=IMAGENET_STD, pooling="cls", embed_dim=1024,
                  licence="CC-BY-NC-ND-4.0 (gated)",
                  local_architecture="timm:vit_large_patch16_224",
                  local_kwargs={"img_size": 224, "patch_size": 16, "init_values": 1e-5, "dynamic_img_size": True},
                  training_data=["MGH", "BWH", "GTEx"],
                  training_data_source="Mass-100K: 100M tiles of 100,426 H&E slides from MGH, BWH and GTEx (Chen et al., "
                                       "Nature Medicine 2024, UNI; its model card: 100,000+ diagnostic H&E slides)"),
        ModelCard(name="uni2-h", hub_id="MahmoodLab/UNI2-h", architecture="hf-hub:MahmoodLab/UNI2-h",
                  timm_kwargs=UNI2_H,
                  mean=IMAGENET_MEAN, std=IMAGENET_STD, pooling="cls", embed_dim=1536,
                  licence="CC-BY-NC-ND-4.0 (gated)",
                  local_architecture="timm:vit_giant_patch14_224", local_kwargs=UNI2_H,
                  training_data=None,
                  training_data_source="unknown: its model card says 200M+ images of 350k+ H&E and IHC slides and names no "
                                       "source"),
        ModelCard(name="virchow2", hub_id="paige-ai/Virchow2", architecture="hf-hub:paige-ai/Virchow2",
                  timm_kwargs=dict(SWIGLU), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                  pooling="cls+mean", embed_dim=2560, licence="CC-BY-NC-ND-4.0 (gated)",
                  local_architecture="timm:vit_huge_patch14_224",
                  local_kwargs={"img_size": 224, "init_values": 1e-5, "reg_tokens": 4, "mlp_ratio": 5.3375,
                                "dynamic_img_size": True, **SWIGLU},
                  notes="embedding = [CLS ; mean of patch tokens], registers excluded",
                  training_data=["MSKCC"],
                  training_data_source="3.1M slides from Memorial Sloan Kettering's archive (Zimmermann et al., 2024, "
                                       "Virchow 2, arXiv:2408.00738)"),
        ModelCard(name="h-optimus-0", hub_id="bioptimus/H-optimus-0", architecture="hf-hub:bioptimus/H-optimus-0",
                  timm_kwargs={"init_values": 1e-5, "dynamic_img_size": False},
                  mean=HOPTIMUS_MEAN, std=HOPTIMUS_STD, pooling="cls", embed_dim=1536, licence="Apache-2.0",
                  local_architecture="timm:vit_giant_patch14_reg4_dinov2", local_kwargs=HOPTIMUS,
                  training_data=["proprietary"],
                  training_data_source="its model card: a proprietary collection of 500,000+ H&E slides (Bioptimus); "
                                       "no public collection named"),
        ModelCard(name="h-optimus-1", hub_id="bioptimus/H-optimus-1", architecture="hf-hub:bioptimus/H-optimus-1",
                  timm_kwargs={"init_values": 1e-5, "dynamic_img_size": False},
                  mean=HOPTIMUS_MEAN, std=HOPTIMUS_STD, pooling="cls", embed_dim=1536,
                  licence="proprietary (gated)",
                  local_architecture="timm:vit_giant_patch14_reg4_dinov2", local_kwargs=HOPTIMUS,
                  training_data=None,
                  training_data_source="unknown: not read from its gated model card here"),
        ModelCard(name="h0-mini", hub_id="bioptimus/H0-mini", architecture="hf-hub:bioptimus/H0-mini",
                  timm_kwargs=dict(SWIGLU), mean=HOPTIMUS_MEAN, std=HOPTIMUS_STD,
                  pooling="cls+mean", embed_dim=1536, licence="CC-BY-NC-ND-4.0 (gated)",
                  local_architecture="timm:vit_base_patch14_reg4_dinov2",
                  # mlp_ratio inferred, not read from the gated config: the SwiGLU layer its card asks for and
                  # its published 86M parameters give 5.33334 (as in the giant DINOv2 models it is distilled from)
                  local_kwargs={"img_size": 224, "init_values": 1e-5, "mlp_ratio": 5.33334, **SWIGLU},
                  training_data=["TCGA", "proprietary"],
                  training_data_source="distilled from H-optimus-0 (proprietary slides) on 43M tiles from TCGA (Filiot et al., "
                                       "MICCAI 2025, arXiv:2501.16239)"),
        ModelCard(name="prov-gigapath", hub_id="prov-gigapath/prov-gigapath",
                  architecture="hf-hub:prov-gigapath/prov-gigapath", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                  pooling="cls", embed_dim=1536, licence="Apache-2.0 (gated)",
                  crop_pct=224 / 256,  # its eval transform: resize to 256 (bicubic), centre-crop 224
                  local_architecture="timm:vit_giant_patch14_dinov2",
                  local_kwargs={"img_size": 224, "patch_size": 16, "embed_dim": 1536, "depth": 40, "num_heads": 24,
                                "init_values": 1e-5, "mlp_ratio": 5.33334},
                  training_data=["Providence"],
                  training_data_source="1.3B tiles of 171,189 slides from Providence Health & Services (Xu et al., Nature "
                                       "2024, Prov-GigaPath)"),
        ModelCard(name="phikon-v2", hub_id="owkin/phikon-v2", architecture="transformers:owkin/phikon-v2",
                  mean=IMAGENET_MEAN, std=IMAGENET_STD, pooling="cls", embed_dim=1024,
                  licence="Owkin non-commercial", notes="DINOv2 ViT-L in transformers; needs `pip install transformers`",
                  local_architecture=TRANSFORMERS_DINOV2,
                  local_kwargs={"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                                "patch_size": 14, "image_size": 224, "layerscale_value": 1e-5},
                  training_data=["TCGA", "CPTAC", "GTEx", "TCIA"],
                  training_data_source="PANCAN-XL: 450M tiles of 60K slides from TCGA (29,502), CPTAC (6,193), GTEx "
                                       "(13,302), TCIA 'and others' (its model card)"),
        ModelCard(name="midnight", hub_id="kaiko-ai/midnight", architecture="transformers:kaiko-ai/midnight",
                  mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), pooling="cls+mean", embed_dim=3072,
                  licence="MIT", notes="DINOv2 ViT-g in transformers; needs `pip install transformers`",
                  local_architecture=TRANSFORMERS_DINOV2,
                  local_kwargs={"hidden_size": 1536, "num_hidden_layers": 40, "num_attention_heads": 24,
                                "patch_size": 14, "image_size": 224, "use_swiglu_ffn": True, "layerscale_value": 1e-5},
                  training_data=["TCGA"],
                  training_data_source="Midnight-12k: trained only on 12k TCGA slides (its model card; Karasikov et al., "
                                       "MICCAI 2025)"),
        ModelCard(name="conch", hub_id="MahmoodLab/CONCH", architecture="conch:MahmoodLab/CONCH",
                  mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711),
                  pooling="cls", embed_dim=512, licence="CC-BY-NC-ND-4.0 (gated)",
                  notes="CoCa vision tower; needs the `conch` package from MahmoodLab's repository",
                  training_data=["PubMed Central", "MGH", "BWH"],
                  training_data_source="1.17M image-caption pairs from PubMed Central and educational sources; its vision "
                                       "encoder first pretrained on 16M tiles of 21,442 in-house MGH/BWH slides (Lu et al., "
                                       "Nature Medicine 2024, CONCH)"),
    ]
}


# Published sizes (millions of backbone parameters), which the local architectures must reproduce
# (tests/harness/test_zoo.py): the model cards and papers of each.
PUBLISHED_PARAMETERS_M = {"uni": 303, "uni2-h": 681, "virchow2": 632, "h-optimus-0": 1134, "h-optimus-1": 1134,
                          "h0-mini": 86, "prov-gigapath": 1134, "phikon-v2": 303, "midnight": 1134}


def find_known_model(name_or_hub_id: str) -> ModelCard | None:
    key = name_or_hub_id.removeprefix("hf-hub:").lower()
    for card in KNOWN_MODELS.values():  # an empty key matched a card without a hub id: 'hf-hub:' was colour-stats
        if key and key in (card.name, (card.hub_id or "").lower()):
            return card
    return None


def resolve_card(card: ModelCard, card_path: Path) -> ModelCard:
    """A checkpoint's card as its network is built: `base: <known model>` inherits that model's
    fields it does not set, and a transformers DINOv2 (`architecture: transformers:dinov2`, or a base
    that is one) takes its settings from the config.json beside the card (dinov2_config.py)."""
    if card.base is None:
        if card.architecture is None:
            raise HarnessError(f"{card_path}: model card key 'architecture': required (a timm model name, or "
                               f"{TRANSFORMERS_DINOV2})")
        return _with_dinov2_config(card, card_path)
    base = find_known_model(card.base)
    if base is None:
        raise HarnessError(f"{card_path}: model card key 'base': unknown model '{card.base}' (see `harness list`)")
    # not the base's Hub repository: these weights are not read from it (a result would name it, and the
    # board link it, as where they live); a Hub submission's card names its own (hub_queue.card_at_commit)
    merged = base.model_dump(exclude={"hub_id", "revision"})
    merged.update(card.model_dump(include=card.model_fields_set))
    if str(merged.get("architecture", "")).startswith(("hf-hub:", "transformers:", "conch:")) \
            and merged["architecture"] != TRANSFORMERS_DINOV2:
        # the weights are local: build the architecture the zoo declares, without asking the Hub for it
        local = base.local_architecture or ""
        if local.startswith("timm:"):
            merged["architecture"] = local.removeprefix("timm:")
            merged["timm_kwargs"] = {**base.local_kwargs, **card.timm_kwargs}
        elif local == TRANSFORMERS_DINOV2:  # Phikon-v2, Midnight: their fine-tunes are save_pretrained's files
            merged["architecture"] = TRANSFORMERS_DINOV2
        else:
            raise HarnessError(
                f"{card_path}: model card key 'architecture': required with base '{card.base}' "
                "(a timm model name; local checkpoints of this base are not built from the zoo)"
            )
    return _with_dinov2_config(ModelCard.model_validate(merged), card_path)


def _with_dinov2_config(card: ModelCard, card_path: Path) -> ModelCard:
    """A transformers DINOv2's card with the settings of the config.json beside it (the network is
    built from them, and a result's card digest covers them); any other card as it is."""
    if card.architecture != TRANSFORMERS_DINOV2:
        return card
    if card.timm_kwargs:
        raise HarnessError(f"{card_path}: model card key 'timm_kwargs': a transformers DINOv2 is built from the "
                           "config.json beside its weights, not from timm_kwargs; remove them")
    from harness.models.dinov2_config import read_dinov2_config

    config = read_dinov2_config(Path(card_path).parent / "config.json")
    return card.model_copy(update={"local_architecture": TRANSFORMERS_DINOV2, "local_kwargs": config})
