"""benchmarks/target_spectrum.py, the teachers' targets taken apart: its variance shares equal
scikit-learn's least squares and numpy's SVD on the same arrays, and a factor built into the data
is found where it was put."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from harness.synth.tissue import LATENT_DIM, MAX_MITOSES, TISSUE_CLASSES, TissueFactors

from tests.support.benchmark_scripts import BENCHMARKS, load_benchmark
from tests.support.registries import TINY_REGISTRY


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


TOY = TINY_REGISTRY.replace("datasets:", """datasets:
  toy-distill:
    source: synth
    generator: tiles
    params: {tile_size: 64, per_class: {train: 4}, tumour_weight: 2, seed: 7}""")


def test_it_runs_end_to_end_at_toy_size_and_prints_both_tables(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # as when run as a script: the study beside it
    spectrum = load_spectrum()
    registry = tmp_path / "toy.yaml"
    registry.write_text(TOY)
    spectrum.main(["--tasks", "tiny-tiles", "--dataset", "toy-distill", "--include", str(registry),
                   "--cache-dir", str(tmp_path / "cache")])
    printed = capsys.readouterr().out
    factor_rows = [line for line in printed.splitlines() if line.startswith("| synth-teacher-") and line.count("|") == 7]
    assert [row.split("|")[1].strip() for row in factor_rows] == ["synth-teacher-nuclei", "synth-teacher-tissue"]
    for row in factor_rows:  # five shares, each a finite percentage (a NaN or an empty fit would not be)
        shares = [float(cell.strip().rstrip("%")) for cell in row.strip("|").split("|")[1:]]
        assert len(shares) == 5 and all(-0.1 <= v <= 100.1 for v in shares)
    direction_rows = [line for line in printed.splitlines() if line.startswith("| synth-teacher-") and line.count("|") == 5]
    assert [row.split("|")[2].strip() for row in direction_rows] == ["1", "2", "4", "8", "16", "32", "64", "128", "320"] * 2
    assert direction_rows[8].split("|")[3].strip() == "100.0%"  # all 320 directions hold all the variance


@pytest.mark.parametrize("args, expected", [
    (["--dataset", "no-such-set"], "--dataset: unknown no-such-set"),
    (["--tasks", "no-such-task"], "--tasks: unknown no-such-task"),
    (["--teachers", "no-such-model", "--dataset", "toy-distill", "--tasks", "tiny-tiles"], "--teachers no-such-model:"),
])
def test_bad_arguments_stop_it_in_one_line(tmp_path, capsys, monkeypatch, args, expected):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    registry = tmp_path / "toy.yaml"
    registry.write_text(TOY)
    with pytest.raises(SystemExit) as stopped:
        load_spectrum().main([*args, "--include", str(registry), "--cache-dir", str(tmp_path / "cache")])
    message = capsys.readouterr().err.strip().splitlines()[-1] if stopped.value.code == 2 else str(stopped.value.code)
    assert expected in message and "Traceback" not in message and "\n" not in message
