import numpy as np
import pytest

from harness.perturbations import HED_FROM_RGB, PERTURBATIONS, RGB_FROM_HED, hed_jitter


@pytest.fixture
def tile():
    rng = np.random.default_rng(0)
    return (rng.uniform(60, 250, size=(32, 40, 3))).astype(np.uint8)


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_each_perturbation_is_seeded_and_keeps_the_tile_format(name, tile):
    out = PERTURBATIONS[name](tile, np.random.default_rng(5))
    again = PERTURBATIONS[name](tile, np.random.default_rng(5))
    np.testing.assert_array_equal(out, again)
    assert out.dtype == np.uint8 and out.shape[2] == 3 and out.size == tile.size
    assert not np.array_equal(out, tile)


def test_hed_jitter_without_strength_is_the_identity_up_to_rounding(tile):
    np.testing.assert_allclose(HED_FROM_RGB @ RGB_FROM_HED, np.eye(3), atol=1e-12)
    out = hed_jitter(tile, np.random.default_rng(0), sigma=0.0)
    assert np.abs(out.astype(int) - tile.astype(int)).max() <= 1


def test_geometric_transforms_only_move_pixels(tile):
    for name in ("flip", "rot90"):
        out = PERTURBATIONS[name](tile, np.random.default_rng(1))
        assert sorted(out.reshape(-1, 3).tolist()) == sorted(tile.reshape(-1, 3).tolist())
