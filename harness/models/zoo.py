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

KNOWN_MODELS: dict[str, ModelCard] = {
    card.name: card
    for card in [
        ModelCard(name="colour-stats", architecture="builtin:colour-stats", mean=(0.0, 0.0, 0.0),
                  std=(1.0, 1.0, 1.0), input_size=64, pooling="mean-patch", embed_dim=30, licence="Apache-2.0",
                  notes="no weights: per-channel colour mean, std and 8-bin histogram (a colour-only baseline)"),
        ModelCard(name="uni", hub_id="MahmoodLab/UNI", architecture="hf-hub:MahmoodLab/UNI",
                  timm_kwargs={"init_values": 1e-5, "dynamic_img_size": True},
                  mean=IMAGENET_MEAN, std=IMAGENET_STD, pooling="cls", embed_dim=1024,
                  licence="CC-BY-NC-ND-4.0 (gated)"),
        ModelCard(name="uni2-h", hub_id="MahmoodLab/UNI2-h", architecture="hf-hub:MahmoodLab/UNI2-h",
                  timm_kwargs={"img_size": 224, "patch_size": 14, "depth": 24, "num_heads": 24,
                               "init_values": 1e-5, "embed_dim": 1536, "mlp_ratio": 5.33334,
                               "no_embed_class": True, "reg_tokens": 8, "dynamic_img_size": True,
                               **SWIGLU},
                  mean=IMAGENET_MEAN, std=IMAGENET_STD, pooling="cls", embed_dim=1536,
                  licence="CC-BY-NC-ND-4.0 (gated)"),
        ModelCard(name="virchow2", hub_id="paige-ai/Virchow2", architecture="hf-hub:paige-ai/Virchow2",
                  timm_kwargs=dict(SWIGLU), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                  pooling="cls+mean", embed_dim=2560, licence="CC-BY-NC-ND-4.0 (gated)",
                  notes="embedding = [CLS ; mean of patch tokens], registers excluded"),
        ModelCard(name="h-optimus-0", hub_id="bioptimus/H-optimus-0", architecture="hf-hub:bioptimus/H-optimus-0",
                  timm_kwargs={"init_values": 1e-5, "dynamic_img_size": False},
                  mean=HOPTIMUS_MEAN, std=HOPTIMUS_STD, pooling="cls", embed_dim=1536, licence="Apache-2.0"),
        ModelCard(name="h-optimus-1", hub_id="bioptimus/H-optimus-1", architecture="hf-hub:bioptimus/H-optimus-1",
                  timm_kwargs={"init_values": 1e-5, "dynamic_img_size": False},
                  mean=HOPTIMUS_MEAN, std=HOPTIMUS_STD, pooling="cls", embed_dim=1536,
                  licence="proprietary (gated)"),
        ModelCard(name="h0-mini", hub_id="bioptimus/H0-mini", architecture="hf-hub:bioptimus/H0-mini",
                  timm_kwargs=dict(SWIGLU), mean=HOPTIMUS_MEAN, std=HOPTIMUS_STD,
                  pooling="cls+mean", embed_dim=1536, licence="CC-BY-NC-ND-4.0 (gated)"),
        ModelCard(name="prov-gigapath", hub_id="prov-gigapath/prov-gigapath",
                  architecture="hf-hub:prov-gigapath/prov-gigapath", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                  pooling="cls", embed_dim=1536, licence="Apache-2.0 (gated)"),
        ModelCard(name="phikon-v2", hub_id="owkin/phikon-v2", architecture="transformers:owkin/phikon-v2",
                  mean=IMAGENET_MEAN, std=IMAGENET_STD, pooling="cls", embed_dim=1024,
                  licence="Owkin non-commercial", notes="DINOv2 ViT-L in transformers; needs `pip install transformers`"),
        ModelCard(name="midnight", hub_id="kaiko-ai/midnight", architecture="transformers:kaiko-ai/midnight",
                  mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), pooling="cls+mean", embed_dim=3072,
                  licence="MIT", notes="DINOv2 ViT-g in transformers; needs `pip install transformers`"),
        ModelCard(name="conch", hub_id="MahmoodLab/CONCH", architecture="conch:MahmoodLab/CONCH",
                  mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711),
                  pooling="cls", embed_dim=512, licence="CC-BY-NC-ND-4.0 (gated)",
                  notes="CoCa vision tower; needs the `conch` package from MahmoodLab's repository"),
    ]
}


# timm architecture names to build a known model from local weights without the Hub config.
LOCAL_ARCHITECTURES = {"uni": "vit_large_patch16_224", "uni2-h": "vit_giant_patch14_224"}


def find_known_model(name_or_hub_id: str) -> ModelCard | None:
    key = name_or_hub_id.removeprefix("hf-hub:")
    for card in KNOWN_MODELS.values():
        if key.lower() in (card.name, (card.hub_id or "").lower()):
            return card
    return None
