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
