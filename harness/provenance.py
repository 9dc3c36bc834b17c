"""Where a result came from: the software that computed it and the code's commit, recorded in
every result file (as lm-evaluation-harness and MTEB results do)."""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from harness import __version__


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The harness checkout's commit (with '-dirty' when it has uncommitted changes); None for an
    installed wheel or without git."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def environment(device: str | None, precision: str | None) -> dict:
    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {"harness": __version__, "python": platform.python_version(), "torch": version("torch"),
            "timm": version("timm"), "device": device, "precision": precision, "git_commit": git_commit()}
