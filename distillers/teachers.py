"""Teacher targets: each teacher's summary embedding of every distillation tile, computed once
through the harness's embedding cache (so a teacher already scored on that dataset costs
nothing), then standardised per teacher (PHI-S) so that no teacher dominates the loss."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.distillers.losses import PhiS
from harness.embedding_cache import EmbeddingCache
from harness.tile_embedding import ExtractOptions, embed_split
from harness.models.loading import LoadOptions, load_encoder
from harness.sources import DataContext, TileSource


@dataclass
class TeacherTargets:
    name: str
    weight: float
    raw: np.ndarray  # (n_tiles, d_teacher) as the teacher embeds them
    standardised: np.ndarray  # PHI-S of raw
    n_parameters: int


def teacher_targets(specs, source: TileSource, splits: list[str], context: DataContext,
                    extract: ExtractOptions, load: LoadOptions) -> list[TeacherTargets]:
    cache = EmbeddingCache.of(context)
    targets = []
    for spec in specs:
        encoder = load_encoder(spec.model, LoadOptions(random_init=spec.random_init, device=load.device))
        parts = [np.asarray(embed_split(encoder, source, source.split_fingerprint(split), split, cache, extract)[0]
                            .embeddings)
                 for split in splits]
        raw = np.concatenate(parts).astype(np.float32)
        targets.append(TeacherTargets(spec.model, spec.weight, raw, PhiS(raw)(raw), encoder.info.n_parameters))
    return targets
