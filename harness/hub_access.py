"""Is the Hugging Face Hub reachable? Decided once per process, before any Hub client import.

Offline, huggingface_hub retries each call for ~20 s; with HF_HUB_OFFLINE=1 it fails at once
and serves files already in the local cache. `configure_offline_mode()` sets that variable when
the Hub cannot be reached, so every Hub path (timm `hf-hub:`, datasets, huggingface_hub) stays
the real one and is fast offline.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from urllib.parse import urlparse

from harness.errors import HarnessError

_TRUE = {"1", "true", "yes", "on"}


def offline_requested() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE


@lru_cache(maxsize=1)
def hub_reachable(timeout_s: float = 3.0) -> bool:
    if offline_requested():
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def configure_offline_mode() -> bool:
    """Set HF_HUB_OFFLINE=1 when the Hub is unreachable; return whether we are online."""
    online = hub_reachable()
    if not online:
        os.environ["HF_HUB_OFFLINE"] = "1"
    return online


def hub_api():
    """The huggingface_hub client (token and endpoint from where huggingface_hub looks: HF_TOKEN,
    `hf auth login`, HF_ENDPOINT)."""
    from huggingface_hub import HfApi

    return HfApi()


def hub_call(what: str, repo_id: str, call):
    """Run a Hub call; turn its HTTP and connection errors into one line (`hub_error`)."""
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError

    try:
        return call()
    except (HfHubHTTPError, OSError) as error:
        raise hub_error(what, repo_id, error) from None
    except HFValidationError as error:  # the client's own check of an id or revision, before any request
        raise HarnessError(f"{str(repo_id)[:100]}: {what} refused by the Hub client: {str(error).splitlines()[0][:200]}") \
            from None


def hub_error(what: str, repo_id: str, error: Exception) -> HarnessError:
    """One actionable line for a failed Hub call: not found, refused (token), other status, unreachable."""
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    if isinstance(error, RepositoryNotFoundError):
        return HarnessError(f"{repo_id}: repository not found on the Hub (or not visible with your token): "
                            "check the name, or log in with `hf auth login` / HF_TOKEN")
    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code if error.response is not None else "?"
        if status in (401, 403):
            return HarnessError(f"{repo_id}: {what} refused (HTTP {status}): set HF_TOKEN or run `hf auth login` "
                                "with a token that can write to this repository")
        return HarnessError(f"{repo_id}: {what} failed (HTTP {status}): {str(error).splitlines()[0]}")
    if isinstance(error, OSError):  # connection refused, DNS, offline mode
        return HarnessError(f"{repo_id}: {what} failed: cannot reach the Hub ({error.__class__.__name__}); "
                            "check the connection or HF_ENDPOINT")
    return HarnessError(f"{repo_id}: {what} failed: {type(error).__name__}: {str(error).splitlines()[0][:160]}")


def is_commit(revision: str) -> bool:
    """A full commit sha (pinned), not a branch or tag that can move."""
    return len(revision) == 40 and all(c in "0123456789abcdef" for c in revision.lower())
