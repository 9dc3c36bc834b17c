"""Known pathology foundation models: Hub id, how to build them, transform, pooling, dim.

Taken from each model's card on the Hub. Most are gated: accept the terms on the model page
and set HF_TOKEN, or download the weights once and pass a local checkpoint directory whose
card.yaml says `base: <name>`.
"""

from __future__ import annotations

from harness.models.card import IMAGENET_MEAN, IMAGENET_STD, ModelCard

HOPTIMUS_MEAN = (0.707223, 0.578729, 0.703617)
HOPTIMUS_STD = (0.211883, 0.230117, 0.177517)
# Values that YAML cannot hold are written as names and resolved by the loader.
SWIGLU = {"mlp_layer": "SwiGLUPacked", "act_layer": "SiLU"}
UNI2_H = {"img_size": 224, "patch_size": 14, "depth": 24, "num_heads": 24, "init_values": 1e-5, "embed_dim": 1536,
          "mlp_ratio": 5.33334, "no_embed_class": True, "reg_tokens": 8, "dynamic_img_size": True, **SWIGLU}
HOPTIMUS = {"img_size": 224, "init_values": 1e-5, "dynamic_img_size": False}

KNOWN_MODELS: dict[str, ModelCard] = {
    card.name: card
    for card in [
        ModelCard(name="colour-stats", architecture="builtin:colour-stats", mean=(0.0, 0.0, 0.0),
                  std=(1.0, 1.0, 1.0), input_size=64, pooling="mean-patch", embed_dim=30, licence="Apache-2.0",
                  notes="no weights: per-channel colour mean, std and 8-bin histogram (a colour-only baseline)"),
        ModelCard(name="synth-reference", architecture="package:data/synth-reference", pooling="mean-patch",
                  embed_dim=160, licence="Apache-2.0",
                  notes="a 577k-parameter CNN trained on synthetic tiles of another seed "
                        "(harness/synth/reference_training.py): the trained reference of the synthetic bracket"),
        ModelCard(name="synth-teacher-tissue", architecture="package:data/synth-teacher-tissue", pooling="mean-patch",
                  embed_dim=320, input_size=112, licence="Apache-2.0",
                  notes="a 1.6M-parameter CNN trained on the six synthetic tissues only, reading 112 px "
                        "(harness/synth/teacher_training.py): the tissue-and-context teacher of the distillation study"),
        ModelCard(name="synth-teacher-nuclei", architecture="package:data/synth-teacher-nuclei", pooling="mean-patch",
                  embed_dim=320, licence="Apache-2.0",
                  notes="a 1.6M-parameter CNN trained on nuclear grade and mitoses of synthetic tumour tiles only "
                        "(harness/synth/teacher_training.py): the nuclear-morphology teacher of the distillation study"),
        ModelCard(name="uni", hub_id="MahmoodLab/UNI", architecture="hf-hub:MahmoodLab/UNI",
                  timm_kwargs={"init_values": 1e-5, "dynamic_img_size": True},
                  mean=IMAGENET_MEAN, std=IMAGENET_STD, pooling="cls", embed_dim=1024,
                  licence="CC-BY-NC-ND-4.0 (gated)",
                  local_architecture="timm:vit_large_patch16_224",
                  local_kwargs={"img_size": 224, "patch_size": 16, "init_values": 1e-5, "dynamic_img_size": True}),
        ModelCard(name="uni2-h", hub_id="MahmoodLab/UNI2-h", architecture="hf-hub:MahmoodLab/UNI2-h",
                  timm_kwargs=UNI2_H,
                  mean=IMAGENET_MEAN, std=IMAGENET_STD, pooling="cls", embed_dim=1536,
                  licence="CC-BY-NC-ND-4.0 (gated)",
                  local_architecture="timm:vit_giant_patch14_224", local_kwargs=UNI2_H),
        ModelCard(name="virchow2", hub_id="paige-ai/Virchow2", architecture="hf-hub:paige-ai/Virchow2",
                  timm_kwargs=dict(SWIGLU), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                  pooling="cls+mean", embed_dim=2560, licence="CC-BY-NC-ND-4.0 (gated)",
                  local_architecture="timm:vit_huge_patch14_224",
                  local_kwargs={"img_size": 224, "init_values": 1e-5, "reg_tokens": 4, "mlp_ratio": 5.3375,
                                "dynamic_img_size": True, **SWIGLU},
                  notes="embedding = [CLS ; mean of patch tokens], registers excluded"),
        ModelCard(name="h-optimus-0", hub_id="bioptimus/H-optimus-0", architecture="hf-hub:bioptimus/H-optimus-0",
                  timm_kwargs={"init_values": 1e-5, "dynamic_img_size": False},
                  mean=HOPTIMUS_MEAN, std=HOPTIMUS_STD, pooling="cls", embed_dim=1536, licence="Apache-2.0",
                  local_architecture="timm:vit_giant_patch14_reg4_dinov2", local_kwargs=HOPTIMUS),
        ModelCard(name="h-optimus-1", hub_id="bioptimus/H-optimus-1", architecture="hf-hub:bioptimus/H-optimus-1",
                  timm_kwargs={"init_values": 1e-5, "dynamic_img_size": False},
                  mean=HOPTIMUS_MEAN, std=HOPTIMUS_STD, pooling="cls", embed_dim=1536,
                  licence="proprietary (gated)",
                  local_architecture="timm:vit_giant_patch14_reg4_dinov2", local_kwargs=HOPTIMUS),
        ModelCard(name="h0-mini", hub_id="bioptimus/H0-mini", architecture="hf-hub:bioptimus/H0-mini",
                  timm_kwargs=dict(SWIGLU), mean=HOPTIMUS_MEAN, std=HOPTIMUS_STD,
                  pooling="cls+mean", embed_dim=1536, licence="CC-BY-NC-ND-4.0 (gated)",
                  local_architecture="timm:vit_base_patch14_reg4_dinov2",
                  # mlp_ratio inferred, not read from the gated config: the SwiGLU layer its card asks for and
                  # its published 86M parameters give 5.33334 (as in the giant DINOv2 models it is distilled from)
                  local_kwargs={"img_size": 224, "init_values": 1e-5, "mlp_ratio": 5.33334, **SWIGLU}),
        ModelCard(name="prov-gigapath", hub_id="prov-gigapath/prov-gigapath",
                  architecture="hf-hub:prov-gigapath/prov-gigapath", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                  pooling="cls", embed_dim=1536, licence="Apache-2.0 (gated)",
                  crop_pct=224 / 256,  # its eval transform: resize to 256 (bicubic), centre-crop 224
                  local_architecture="timm:vit_giant_patch14_dinov2",
                  local_kwargs={"img_size": 224, "patch_size": 16, "embed_dim": 1536, "depth": 40, "num_heads": 24,
                                "init_values": 1e-5, "mlp_ratio": 5.33334}),
        ModelCard(name="phikon-v2", hub_id="owkin/phikon-v2", architecture="transformers:owkin/phikon-v2",
                  mean=IMAGENET_MEAN, std=IMAGENET_STD, pooling="cls", embed_dim=1024,
                  licence="Owkin non-commercial", notes="DINOv2 ViT-L in transformers; needs `pip install transformers`",
                  local_architecture="transformers:dinov2",
                  local_kwargs={"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                                "patch_size": 14, "image_size": 224, "layerscale_value": 1e-5}),
        ModelCard(name="midnight", hub_id="kaiko-ai/midnight", architecture="transformers:kaiko-ai/midnight",
                  mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), pooling="cls+mean", embed_dim=3072,
                  licence="MIT", notes="DINOv2 ViT-g in transformers; needs `pip install transformers`",
                  local_architecture="transformers:dinov2",
                  local_kwargs={"hidden_size": 1536, "num_hidden_layers": 40, "num_attention_heads": 24,
                                "patch_size": 14, "image_size": 224, "use_swiglu_ffn": True, "layerscale_value": 1e-5}),
        ModelCard(name="conch", hub_id="MahmoodLab/CONCH", architecture="conch:MahmoodLab/CONCH",
                  mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711),
                  pooling="cls", embed_dim=512, licence="CC-BY-NC-ND-4.0 (gated)",
                  notes="CoCa vision tower; needs the `conch` package from MahmoodLab's repository"),
    ]
}


# Published sizes (millions of backbone parameters), which the local architectures must reproduce
# (tests/harness/test_zoo.py): the model cards and papers of each.
PUBLISHED_PARAMETERS_M = {"uni": 303, "uni2-h": 681, "virchow2": 632, "h-optimus-0": 1134, "h-optimus-1": 1134,
                          "h0-mini": 86, "prov-gigapath": 1134, "phikon-v2": 303, "midnight": 1134}


def find_known_model(name_or_hub_id: str) -> ModelCard | None:
    key = name_or_hub_id.removeprefix("hf-hub:")
    for card in KNOWN_MODELS.values():
        if key.lower() in (card.name, (card.hub_id or "").lower()):
            return card
    return None
