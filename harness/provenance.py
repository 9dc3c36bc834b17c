"""Where a result came from: the software that computed it and the code's commit, recorded in
every result file (as lm-evaluation-harness and MTEB results do)."""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from harness import __version__


def checkout_state(folder: Path) -> tuple[str, bool, str | None] | None:
    """(HEAD commit, has uncommitted changes to tracked files, origin URL or None) of the git checkout
    holding `folder`; None when it is not in one (an installed wheel) or git is missing."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        commit, dirty = git("rev-parse", "HEAD"), bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    try:
        origin = git("remote", "get-url", "origin")
    except (OSError, subprocess.SubprocessError):
        origin = None
    return commit, dirty, origin


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The harness checkout's commit (with '-dirty' when it has uncommitted changes); None for an
    installed wheel or without git."""
    state = checkout_state(Path(__file__).resolve().parent)
    if state is None:
        return None
    commit, dirty, _ = state
    return f"{commit}-dirty" if dirty else commit


def environment(device: str | None, precision: str | None) -> dict:
    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {"harness": __version__, "python": platform.python_version(), "torch": version("torch"),
            "timm": version("timm"), "device": device, "precision": precision, "git_commit": git_commit()}
