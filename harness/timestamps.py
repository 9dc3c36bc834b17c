"""The one timestamp every file the harness writes carries: ISO 8601 UTC to the second, e.g.
2026-11-30T13:44:51Z (results, cache entries, submission requests)."""

from __future__ import annotations

from datetime import datetime, timezone


def utc_timestamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> datetime:
    """A timestamp of this harness (older requests wrote +00:00 instead of Z: both read)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
