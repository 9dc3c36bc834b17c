"""Instrument models for the synthetic suite: they read no pixels.

`random-noise` gives each item a fixed random vector: every metric's chance floor.
`synth-oracle` returns the generator's ground-truth latent (tissue class one-hot + factors):
the ceiling. Together they check the wiring of every metric end to end.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from harness.models.encoder import EncoderInfo
from harness.synth.tissue import TISSUE_CLASSES

NOISE_DIM = 384
INSTRUMENT_VERSION = "2"


class NotApplicable(Exception):
    """The model cannot embed this dataset (recorded as skipped, with this reason)."""


@dataclass
class InstrumentEncoder:
    info: EncoderInfo

    def cache_identity(self) -> str:
        return f"instrument:{self.info.name}:v{INSTRUMENT_VERSION}"

    def embed(self, n_items: int, latents: np.ndarray | None, item_key: str) -> np.ndarray:
        raise NotImplementedError


class RandomNoise(InstrumentEncoder):
    def embed(self, n_items: int, latents: np.ndarray | None, item_key: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(item_key.encode()).digest()[:8], "little")
        return np.random.default_rng(seed).standard_normal((n_items, NOISE_DIM)).astype(np.float32)


class SynthOracle(InstrumentEncoder):
    def embed(self, n_items: int, latents: np.ndarray | None, item_key: str) -> np.ndarray:
        if latents is None:
            raise NotApplicable("synth-oracle embeds only synthetic datasets (it returns their latent)")
        return np.asarray(latents, dtype=np.float32)


class PartialOracle(InstrumentEncoder):
    """One factor of the generator's latent, for distillation checks (one-hot bins, so cosine
    similarity sees a level, not just a direction):
      synth-oracle-tissue  the tissue one-hot;
      synth-oracle-grade   cellularity in 4 bins (every class draws its cells denser or sparser),
                           and atypia in 4 bins on tumour tiles, the only class whose nuclei show it
                           clearly; other tiles get a fifth bin, "not shown" (their atypia value is
                           not in the pixels, so no image model could learn it)."""

    def embed(self, n_items: int, latents: np.ndarray | None, item_key: str) -> np.ndarray:
        if latents is None:
            raise NotApplicable(f"{self.info.name} embeds only synthetic datasets (it returns part of their latent)")
        latents = np.asarray(latents, dtype=np.float32)
        n_classes = latents.shape[1] - 2
        if self.info.name == "synth-oracle-tissue":
            return latents[:, :n_classes]
        bins = np.clip((latents[:, n_classes:] * 4).astype(int), 0, 3)
        atypia = np.where(latents[:, TISSUE_CLASSES.index("tumour")] > 0, bins[:, 1], 4)
        return np.concatenate([np.eye(4, dtype=np.float32)[bins[:, 0]], np.eye(5, dtype=np.float32)[atypia]], 1)


def _info(name: str, dim: int) -> EncoderInfo:
    digest = hashlib.sha256(f"{name}:v{INSTRUMENT_VERSION}".encode()).hexdigest()
    return EncoderInfo(name=name, weights="instrument", weights_sha256=digest, n_parameters=0, embed_dim=dim)


def make_instrument(name: str, latent_dim: int) -> InstrumentEncoder:
    if name == "random-noise":
        return RandomNoise(_info(name, NOISE_DIM))
    if name == "synth-oracle-tissue":
        return PartialOracle(_info(name, latent_dim - 2))
    if name == "synth-oracle-grade":
        return PartialOracle(_info(name, 9))
    return SynthOracle(_info(name, latent_dim))


INSTRUMENTS = ("random-noise", "synth-oracle", "synth-oracle-tissue", "synth-oracle-grade")
