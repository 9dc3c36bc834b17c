"""The student's view jitter: its HED arithmetic is the perturbation's (numpy) on a real H&E tile,
its blur is scipy's Gaussian, and a jittered distillation is deterministic per (seed, step) and
resumable; a checkpoint written before the setting existed still resumes."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from harness.distillers.view_jitter import ViewJitter, gaussian_blurred, jitter_draws, jittered
from harness.perturbations import hed_jitter
from tests.distillers.test_training import run

REAL_TILE = Path(__file__).parents[1] / "assets" / "lc25000-lung" / "lung_aca" / "lungaca1.jpeg"


def real_tiles(n: int = 3, size: int = 96) -> np.ndarray:
    """n crops of a real H&E tile (LC25000, lung adenocarcinoma), uint8 (n, size, size, 3)."""
    image = np.asarray(Image.open(REAL_TILE).convert("RGB"))
    return np.stack([image[40 * i: 40 * i + size, 60 * i: 60 * i + size] for i in range(n)])


def as_batch(tiles: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(tiles).permute(0, 3, 1, 2).float() / 255


def test_the_stain_jitter_is_the_hed_perturbation_on_a_real_tile():
    tiles = real_tiles()
    jitter = ViewJitter(stain=0.2)
    draws = jitter_draws(jitter, seed=3, step=5, n=len(tiles))
    ours = jittered(as_batch(tiles), jitter, draws).permute(0, 2, 3, 1).numpy() * 255
    for i, tile in enumerate(tiles):
        replay = iter([draws["alpha"][i], draws["beta"][i]])  # the perturbation draws alpha, then beta

        class Draws:
            def uniform(self, low, high, size):
                return next(replay)

        reference = hed_jitter(tile, Draws(), sigma=0.2).astype(float)  # rounded to uint8
        assert np.abs(ours[i] - reference).max() <= 0.5 + 1e-3
    assert np.abs(ours - tiles).mean() > 3  # and it did change the colours (by 0.2, HED-strong)


def test_the_blur_is_scipys_gaussian_and_the_gamma_a_tone_curve():
    tiles = as_batch(real_tiles(3))
    sigmas = [1.0, 0.05, 2.0]  # each tile its own; below 0.1 px left as it is
    ours = gaussian_blurred(tiles, torch.tensor(sigmas)).numpy()
    for tile, sigma, out in zip(tiles.numpy(), sigmas, ours):
        reference = gaussian_filter(tile, sigma=(0, sigma, sigma), mode="mirror", truncate=3.0)
        reference = tile if sigma < 0.1 else reference
        assert np.abs(out - reference).max() < 1e-5, sigma
    assert gaussian_blurred(tiles, torch.tensor([0.0, 0.05, 0.09])) is tiles

    jitter = ViewJitter(gamma=0.3)
    draws = jitter_draws(jitter, seed=0, step=0, n=64)
    assert draws["gamma"].min() >= 1 / 1.3 - 1e-9 and draws["gamma"].max() <= 1.3 + 1e-9
    batch = as_batch(real_tiles(2))
    out = jittered(batch, jitter, {key: value[:2] for key, value in draws.items()})
    gammas = torch.tensor(draws["gamma"][:2], dtype=torch.float32).view(-1, 1, 1, 1)
    assert torch.allclose(out, batch ** gammas, atol=1e-4)  # 1e-4: black pixels meet the 1e-6 floor of log
    assert jittered(batch, ViewJitter(), draws) is batch  # all zero: no jitter


def test_a_jittered_distillation_resumes_to_the_same_student(tmp_path, tiny_registry_file, monkeypatch):
    from harness.distillers import training_loop

    views = []

    def recorded(x, jitter, draws):  # the real jitter, its inputs recorded
        views.append((x.shape[0], draws["alpha"].copy()))
        return jittered(x, jitter, draws)

    monkeypatch.setattr(training_loop, "jittered", recorded)
    jitter = {"stain": 0.2, "gamma": 0.25, "blur": 1.0}
    whole = run(tmp_path, tiny_registry_file, tmp_path / "whole", steps=4, jitter=jitter)
    assert len(views) == 4 and all(n == 8 for n, _ in views)  # every step's student batch, jittered
    run(tmp_path, tiny_registry_file, tmp_path / "resumed", steps=4, stop_after=1, jitter=jitter)
    resumed = run(tmp_path, tiny_registry_file, tmp_path / "resumed", steps=4, jitter=jitter)
    assert resumed["weights_digest"] == whole["weights_digest"]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(views[:4], views[4:]))  # the same draws per step


def test_a_checkpoint_from_before_the_jitter_setting_resumes_as_unjittered(tmp_path, tiny_registry_file):
    import json

    from harness.errors import HarnessError

    out = tmp_path / "student"
    run(tmp_path, tiny_registry_file, out, steps=4, stop_after=2)
    path = out / "checkpoint" / "state.pt"
    state = torch.load(path, weights_only=True)
    settings = json.loads(state["settings"])
    del settings["jitter"]  # as an older harness wrote it
    state["settings"] = json.dumps(settings, sort_keys=True)
    torch.save(state, path)
    with pytest.raises(HarnessError, match=r"another distillation \(different jitter\)"):
        run(tmp_path, tiny_registry_file, out, steps=4, jitter={"stain": 0.05})
    assert run(tmp_path, tiny_registry_file, out, steps=4)["steps"] == 4
