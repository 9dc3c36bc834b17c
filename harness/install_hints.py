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
