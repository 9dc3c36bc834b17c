"""--model resolved once (harness/models/model_spec.py): every kind of spec, the one slug rule,
a checkpoint's hash read once, and one line for a spec that cannot be a model."""

import hashlib

import pytest

from harness.errors import HarnessError
from harness.models.encoder import EncoderInfo
from harness.models.model_spec import LoadOptions, model_slug, resolve_model
from tests.support.checkpoints import author_files


def test_each_kind_of_spec(tmp_path, tiny_fm_state):
    assert (resolve_model("synth-oracle").source, resolve_model("synth-oracle").weights) == ("instrument", "instrument")
    timm_spec = resolve_model("timm:vit_tiny_patch16_224", LoadOptions(random_init=True))
    assert (timm_spec.source, timm_spec.weights, timm_spec.slug) == ("timm", "random-init",
                                                                     "timm--vit_tiny_patch16_224-random-init")
    assert resolve_model("uni").card.embed_dim == 1024 and resolve_model("uni").source == "known"
    assert resolve_model("colour-stats").weights == "instrument"
    shipped = resolve_model("synth-reference")  # a checkpoint inside the package
    assert (shipped.source, shipped.name, shipped.weights) == ("checkpoint", "synth-reference", "checkpoint")
    hub = resolve_model("hf-hub:lab/tiny-vit")
    assert hub.card.hub_id == "lab/tiny-vit" and hub.weights_sha256 is None

    weights, _ = author_files(tmp_path / "author", tiny_fm_state)
    local = resolve_model(str(tmp_path / "author"))
    assert (local.source, local.name, local.checkpoint) == ("checkpoint", "lab/tiny-fm", weights)
    assert local.weights_sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert local.slug == "lab--tiny-fm"


def test_the_slug_rule_is_the_one_the_encoder_and_the_results_use():
    for name, weights in (("timm:vit_small_patch16_224", "pretrained"), ("lab/Model v2", "checkpoint"),
                          ("/data/ckpt/", "random-init")):
        assert EncoderInfo(name, weights, "", 0, 0).slug == model_slug(name, weights)
    assert model_slug("lab/Model v2") == "lab--Model--v2" and model_slug("x", "random-init") == "x-random-init"


@pytest.mark.parametrize("spec, message", [
    ("", "empty model spec"),
    ("timm:not_a_net", "timm has no architecture 'not_a_net'"),
    ("nonsense", "unknown model 'nonsense'"),
])
def test_a_spec_that_cannot_be_a_model_is_one_line(spec, message):
    with pytest.raises(HarnessError, match=message):
        resolve_model(spec)


def test_a_folder_without_card_or_weights_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match="no weights file"):
        resolve_model(str(tmp_path / "empty"))
    (tmp_path / "nocard").mkdir()
    (tmp_path / "nocard" / "model.safetensors").write_bytes(b"")
    with pytest.raises(HarnessError, match="no card.yaml"):
        resolve_model(str(tmp_path / "nocard"))



def test_two_checkpoints_of_one_name_in_one_run_are_refused_before_anything_runs(tmp_path, tiny_fm_state, capsys):
    """Each would write results/lab--tiny-fm/: the second overwrote the first's results (seen when
    two students of one study arm, trained for different step counts, were scored in one run)."""
    from harness.cli import EXIT_USAGE, main

    author_files(tmp_path / "a", tiny_fm_state)
    author_files(tmp_path / "b", {k: v + 1 for k, v in tiny_fm_state.items()})
    code = main(["run", "--model", str(tmp_path / "a"), "--model", str(tmp_path / "b"), "--tasks", "synth-tiles",
                 "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")])
    error = capsys.readouterr().err
    assert code == EXIT_USAGE and len(error.strip().splitlines()) == 1
    assert f"--model {tmp_path / 'a'} and --model {tmp_path / 'b'} are both named 'lab/tiny-fm'" in error
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()] and not (tmp_path / "cache").exists()
    from harness.runner import distinct_models

    same = [(spec, resolve_model(spec)) for spec in (str(tmp_path / "a"), f"{tmp_path / 'a'}/")]
    assert distinct_models(same) == same[:1]  # the same weights named twice are one model, scored once
