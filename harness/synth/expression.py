"""Spatial transcriptomics drawn from the generator's truth: each synthetic tile is a spot, and its
gene counts follow what the generator drew for it (tissue, cellularity, atypia, mitoses).

Genes come in programmes: a tissue marker per tissue class, genes that track cellularity,
nuclear atypia and mitoses (proliferation), genes mixing two factors, and housekeeping genes that
no image can predict. Each spot's count of a gene is Poisson with log-rate

    log(depth) + baseline + loadings . latent + patient offset

where depth is the spot's library size (log-normal) and the patient offset a per-patient shift
of each gene: both are biology or chemistry that the tile does not show, so no encoder reaches
r = 1. `ceiling_pearson` is what the expected log-rate itself scores: the bracket's top.
"""

from __future__ import annotations

import numpy as np

from harness.synth.tissue import LATENT_DIM, LATENT_FACTORS, TISSUE_CLASSES

EXPRESSION_VERSION = 1
N_PATIENTS = 12
N_HOUSEKEEPING = 40


def gene_programmes(seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(gene names, loadings (n_genes, LATENT_DIM), baselines (n_genes,)): fixed by `seed`."""
    rng = np.random.default_rng([seed, 7411])
    names, rows = [], []
    factor_index = {f: len(TISSUE_CLASSES) + i for i, f in enumerate(LATENT_FACTORS)}
    for i, tissue in enumerate(TISSUE_CLASSES):
        for copy in range(5):  # markers of each tissue, of different strength
            row = np.zeros(LATENT_DIM)
            row[i] = rng.uniform(1.0, 2.5)
            names.append(f"{tissue[:4].upper()}{copy + 1}")
            rows.append(row)
    for factor, index in factor_index.items():
        for copy in range(6):
            row = np.zeros(LATENT_DIM)
            row[index] = rng.uniform(1.5, 3.0)
            names.append(f"{factor[:4].upper()}{copy + 1}")
            rows.append(row)
    for copy in range(12):  # two factors at once: a tissue and a factor
        row = np.zeros(LATENT_DIM)
        row[rng.integers(len(TISSUE_CLASSES))] = rng.uniform(0.8, 1.6)
        row[len(TISSUE_CLASSES) + rng.integers(len(LATENT_FACTORS))] = rng.uniform(1.0, 2.0)
        names.append(f"MIX{copy + 1}")
        rows.append(row)
    for copy in range(N_HOUSEKEEPING):
        names.append(f"HK{copy + 1}")
        rows.append(np.zeros(LATENT_DIM))
    loadings = np.stack(rows)
    baselines = rng.uniform(0.0, 1.5, len(names))
    baselines[-N_HOUSEKEEPING:] = rng.uniform(0.5, 1.0, N_HOUSEKEEPING)  # steady, lowly varying
    return names, loadings, baselines


def spot_patients(n_spots: int, seed: int) -> np.ndarray:
    """The patient of each spot ('patient-07'): balanced, shuffled with `seed`."""
    rng = np.random.default_rng([seed, 3301])
    return np.array([f"patient-{p:02d}" for p in rng.permutation(np.arange(n_spots) % N_PATIENTS)])


def expected_log_rate(latents: np.ndarray, seed: int) -> np.ndarray:
    """(n_spots, n_genes): what the tile's truth says each gene's log-rate is (no depth, no patient)."""
    _, loadings, baselines = gene_programmes(seed)
    return baselines + np.asarray(latents, np.float64) @ loadings.T


def draw_counts(latents: np.ndarray, patients: np.ndarray, seed: int, draw_seed: int) -> np.ndarray:
    """(n_spots, n_genes) Poisson counts (float32): the programmes and each patient's offsets are
    fixed by `seed` (the same patient shifts the same genes in every split), depth and the draws by
    `draw_seed`."""
    names, _, _ = gene_programmes(seed)
    offsets = np.random.default_rng([seed, 9157]).normal(0.0, 0.35, (N_PATIENTS, len(names)))
    patient_offset = offsets[[int(str(p).rsplit("-", 1)[-1]) for p in patients]]
    rng = np.random.default_rng([seed, draw_seed, 2203])
    depth = rng.normal(np.log(4.0), 0.25, (len(latents), 1))
    rate = np.exp(depth + expected_log_rate(latents, seed) + patient_offset)
    return rng.poisson(rate).astype(np.float32)


def ceiling_pearson(latents: np.ndarray, counts: np.ndarray, seed: int, genes: list[str]) -> float:
    """Mean over `genes` of Pearson(expected log-rate, log1p counts): what knowing the tile's truth
    scores (a gene no tile informs counts as 0)."""
    names, _, _ = gene_programmes(seed)
    columns = [names.index(g) for g in genes]
    expected = expected_log_rate(latents, seed)[:, columns]
    observed = np.log1p(counts[:, columns].astype(np.float64))
    t, p = observed - observed.mean(0), expected - expected.mean(0)
    norms = np.sqrt((t * t).sum(0) * (p * p).sum(0))
    return float(np.mean(np.where(norms > 1e-12, (t * p).sum(0) / np.where(norms > 1e-12, norms, 1.0), 0.0)))
