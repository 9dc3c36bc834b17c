"""The zoo built offline: every known FM's architecture from zoo.py alone (no Hub, random weights,
on the meta device so the 1B-parameter ones cost nothing), with the embedding dim its card
declares and the parameter count its authors publish; and each one's eval transform."""

import numpy as np
import pytest
import torch
from PIL import Image

from harness.models.loading import build_local_backbone, finish_encoder
from harness.models.transform import TileTransform
from harness.models.zoo import KNOWN_MODELS, PUBLISHED_PARAMETERS_M

BUILT_OFFLINE = sorted(PUBLISHED_PARAMETERS_M)


def test_every_known_fm_but_the_special_ones_has_a_local_architecture():
    # colour-stats has no weights; the synthetic reference and teachers are checkpoints inside the
    # package; CONCH needs MahmoodLab's own `conch` package, which PyPI does not have
    shipped = {name for name, card in KNOWN_MODELS.items() if (card.architecture or "").startswith("package:")}
    assert shipped == {"synth-reference", "synth-teacher-tissue", "synth-teacher-nuclei"}
    assert set(BUILT_OFFLINE) == set(KNOWN_MODELS) - {"colour-stats", "conch"} - shipped


def test_every_known_model_declares_its_training_data_with_a_source_or_why_unknown():
    """What each card says a model learned from, with where that comes from (paper, model card);
    unknown stays None, with the reason, never guessed."""
    for name, card in KNOWN_MODELS.items():
        assert card.training_data_source.strip(), name
        if card.training_data is None:
            assert card.training_data_source.startswith("unknown:"), name
    pretrained_on = lambda *names: {n for n, c in KNOWN_MODELS.items() if c.training_data and set(names) & set(c.training_data)}
    assert pretrained_on("TCGA") == {"h0-mini", "phikon-v2", "midnight"}
    assert {n for n, c in KNOWN_MODELS.items() if c.training_data is None} == {"uni2-h", "h-optimus-1"}


@pytest.mark.parametrize("name", BUILT_OFFLINE, ids=BUILT_OFFLINE)
def test_each_known_fm_builds_offline_with_its_dim_and_published_size(name):
    card = KNOWN_MODELS[name]
    with torch.device("meta"):
        backbone = build_local_backbone(card)
        encoder = finish_encoder(name, backbone, card, "random-init", "meta", "meta")
    assert encoder.info.embed_dim == card.embed_dim
    published = PUBLISHED_PARAMETERS_M[name] * 1e6
    assert abs(encoder.info.n_parameters - published) / published < 0.01, encoder.info.n_parameters


def test_a_small_known_fm_runs_untrained_offline():
    """`harness run --model h0-mini --random-init` needs no Hub: the local architecture, really run."""
    from harness.models.loading import LoadOptions, load_encoder

    encoder = load_encoder("h0-mini", LoadOptions(random_init=True))
    assert encoder.info.weights == "random-init" and encoder.info.embed_dim == 1536
    with torch.inference_mode():
        out = encoder.module(encoder.transform.normalise(torch.zeros(2, 3, 224, 224, dtype=torch.uint8)))
    assert out.shape == (2, 1536) and torch.isfinite(out).all()


def test_the_gigapath_transform_is_resize_256_then_centre_crop_224():
    from torchvision import transforms

    card = KNOWN_MODELS["prov-gigapath"]
    transform = TileTransform(card.input_size, card.mean, card.std, card.interpolation, card.crop_pct)
    tile = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8))
    reference = transforms.Compose([transforms.Resize(256, interpolation=transforms.InterpolationMode.BICUBIC),
                                    transforms.CenterCrop(224), transforms.PILToTensor()])(tile)
    assert torch.equal(transform.prepare(tile), reference)
    assert torch.equal(transform.prepare(np.asarray(tile)), reference)  # arrays go the same way
    assert "crop0.875" in transform.identity()  # another transform, another cache entry
    # the default (no crop, bicubic) keeps the cache key it always had
    assert TileTransform(224, (0.5,) * 3, (0.5,) * 3).identity() == "resize224-bicubic-mean[0.5, 0.5, 0.5]-std[0.5, 0.5, 0.5]"


@pytest.mark.parametrize("base", ["virchow2", "prov-gigapath", "h-optimus-1"])
def test_a_local_checkpoint_with_a_known_base_gets_the_whole_architecture(tmp_path, base):
    """card.yaml `base: <known>` beside local weights: the architecture comes from the zoo, not the
    Hub (it used to work for uni and uni2-h only), and so does the rest of the card but where its
    weights live."""
    from harness.models.card import read_card
    from harness.models.checkpoint import resolve_card
    from harness.models.loading import build_timm

    path = tmp_path / "card.yaml"
    path.write_text(f"base: {base}\nname: my-{base}\n")
    card = resolve_card(read_card(path), path)
    assert card.architecture == KNOWN_MODELS[base].local_architecture.removeprefix("timm:")
    # local weights: not the base's Hub repository (results recorded it, and the board linked it, as theirs)
    assert card.hub_id is None and card.revision is None and card.licence == KNOWN_MODELS[base].licence
    path.write_text(f"base: {base}\nname: lab/my-{base}\nhub_id: lab/my-{base}\nrevision: {'a' * 40}\n")
    assert resolve_card(read_card(path), path).hub_id == f"lab/my-{base}"  # a Hub submission's card names its own
    with torch.device("meta"):
        encoder = finish_encoder(card.name, build_timm(card.architecture, card.timm_kwargs, pretrained=False), card,
                                 "checkpoint", "meta", "meta")
    assert encoder.info.embed_dim == KNOWN_MODELS[base].embed_dim
    assert encoder.transform.crop_pct == KNOWN_MODELS[base].crop_pct
