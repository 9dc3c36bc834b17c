"""benchmarks/target_spectrum.py, the teachers' targets taken apart: its variance shares equal
scikit-learn's least squares and numpy's SVD on the same arrays, and a factor built into the data
is found where it was put."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LinearRegression

from harness.synth.tissue import LATENT_DIM, MAX_MITOSES, TISSUE_CLASSES, TissueFactors

from tests.support.benchmark_scripts import load_benchmark


def load_spectrum():
    return load_benchmark("target_spectrum")


def latents(n: int, rng: np.random.Generator) -> np.ndarray:
    """Tile latents as the generator writes them (one-hot tissue, cellularity, atypia, mitoses / 8)."""
    out = []
    for _ in range(n):
        tissue = TISSUE_CLASSES[rng.integers(len(TISSUE_CLASSES))]
        mitoses = int(rng.integers(MAX_MITOSES + 1)) if tissue == "tumour" else 0
        out.append(TissueFactors(tissue, float(rng.uniform()), float(rng.uniform()), mitoses).latent())
    return np.stack(out)


def test_explained_share_is_least_squares_as_scikit_learn_fits_it():
    spectrum = load_spectrum()
    rng = np.random.default_rng(0)
    regressors = rng.normal(size=(300, 5))
    x = regressors @ rng.normal(size=(5, 7)) + rng.normal(scale=0.8, size=(300, 7)) + 3.0
    residual = x - LinearRegression().fit(regressors, x).predict(regressors)
    expected = 1 - (residual**2).sum() / ((x - x.mean(axis=0)) ** 2).sum()
    assert abs(spectrum.explained_share(x, regressors) - expected) < 1e-10
    assert 0.5 < expected < 1.0  # the noise leaves a part unexplained: the check is not trivially 0 or 1


def test_principal_directions_hold_the_variance_of_the_singular_values():
    spectrum = load_spectrum()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 6)) * np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.1])
    mean, directions, share = spectrum.principal_directions(x)
    singular = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    assert np.allclose(share, singular**2 / (singular**2).sum())
    assert np.all(np.diff(share) <= 0)  # by falling variance
    projected = spectrum.project(x, mean, directions, 2)
    assert projected.shape == (400, 2)
    assert np.allclose(projected.var(axis=0, ddof=1), singular[:2] ** 2 / 399, rtol=1e-5)


def test_a_factor_built_into_the_targets_is_found_in_its_own_column():
    spectrum = load_spectrum()
    rng = np.random.default_rng(2)
    lat = latents(2000, rng)
    assert lat.shape[1] == LATENT_DIM
    counts = np.rint(lat[:, -1] * MAX_MITOSES)
    mitosis_only = np.stack([np.sin(counts), counts**2, np.zeros_like(counts)], 1)  # non-linear in the count
    shares = spectrum.factor_shares(mitosis_only, lat)
    # the tissue one-hot explains what separates tumour (mitoses > 0 possible) from the rest; the
    # per-count columns then explain all the remaining variance, nothing is left over
    assert shares["mitoses"] > 0.5 and abs(shares["unexplained"]) < 1e-9
    assert abs(shares["cellularity"]) < 0.01 and abs(shares["atypia"]) < 0.01
    assert abs(sum(shares.values()) - 1.0) < 1e-9
    tissue_only = lat[:, :len(TISSUE_CLASSES)] @ rng.normal(size=(len(TISSUE_CLASSES), 4))
    shares = spectrum.factor_shares(tissue_only, lat)
    assert shares["tissue"] > 1 - 1e-9 and max(shares["mitoses"], shares["atypia"]) < 1e-9
