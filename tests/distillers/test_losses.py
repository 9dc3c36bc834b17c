"""Each distillation loss, and the fidelity scores, against a value computed by hand."""

import numpy as np
import pytest
import torch
from torch import nn

from harness.distillers.losses import (PhiS, cosine_distance, hadamard, hinton_kd_loss, matryoshka_loss,
                               patch_loss, resize_tokens)


def test_cosine_distance_by_hand():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[0.0, 1.0], [2.0, 2.0]])
    assert cosine_distance(a, b).item() == pytest.approx(((1 - 0) + (1 - 1)) / 2)


def test_patch_loss_is_cosine_plus_smooth_l1_on_the_resized_teacher_grid():
    torch.manual_seed(0)
    s_patch, t_patch = torch.randn(3, 4, 8), torch.randn(3, 16, 8)  # student 2x2 grid, teacher 4x4
    resized = resize_tokens(t_patch, 2)
    cos = torch.nn.functional.cosine_similarity
    tokens = 0.9 * (1 - cos(s_patch, resized, dim=-1)).mean() + 0.1 * torch.nn.functional.smooth_l1_loss(s_patch,
                                                                                                        resized)
    assert patch_loss(s_patch, resized).item() == pytest.approx(tokens.item(), rel=1e-6)


def test_resize_tokens_averages_a_constant_map_and_keeps_a_same_size_grid():
    tokens = torch.ones(1, 16, 3) * torch.tensor([1.0, 2.0, 3.0])
    assert torch.allclose(resize_tokens(tokens, 2), torch.ones(1, 4, 3) * torch.tensor([1.0, 2.0, 3.0]))
    x = torch.randn(2, 9, 4)
    assert resize_tokens(x, 3) is x


def test_matryoshka_loss_averages_the_nested_prefixes():
    embedding = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    target = torch.tensor([[1.0, 1.0]])
    adaptors = {"2": nn.Identity(), "4": nn.Linear(4, 2, bias=False)}
    with torch.no_grad():
        adaptors["4"].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 0, 1.0, 0]]))
    # m=2: (1, 0) vs (1, 1): 1 - 1/sqrt(2); m=4: (1, 1) vs (1, 1): 0
    expected = ((1 - 1 / np.sqrt(2)) + 0.0) / 2
    assert matryoshka_loss(embedding, target, adaptors, [2, 4]).item() == pytest.approx(expected, rel=1e-6)


def test_hinton_kd_by_hand():
    student = torch.tensor([[2.0, 0.0, -1.0]])
    teacher_logits = torch.tensor([[1.0, 1.0, 0.0]])
    tau, alpha = 2.0, 0.3
    p = torch.softmax(teacher_logits / tau, 1)
    log_q = torch.log_softmax(student / tau, 1)
    kl = (p * (torch.log(p) - log_q)).sum()
    ce = -torch.log_softmax(student, 1)[0, 1]
    assert hinton_kd_loss(student, p, tau=tau).item() == pytest.approx((tau**2 * kl).item(), rel=1e-6)
    assert hinton_kd_loss(student, p, torch.tensor([1]), tau=tau, alpha=alpha).item() == pytest.approx(
        (alpha * ce + (1 - alpha) * tau**2 * kl).item(), rel=1e-6)


@pytest.mark.parametrize("dim", [8, 6])
def test_phi_s_gives_every_dimension_unit_variance(dim):
    h = hadamard(dim)
    np.testing.assert_allclose(h @ h.T, np.eye(dim), atol=1e-10)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, dim)) * np.linspace(0.1, 10, dim) + 5  # very unequal scales
    y = PhiS(x)(x)
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-6)
    variances = y.var(0)
    assert variances.mean() == pytest.approx(1.0, rel=1e-3)
    if dim == 8:  # Sylvester Hadamard: exactly equal variances
        np.testing.assert_allclose(variances, 1.0, rtol=1e-3)


def test_phis_on_a_tensor_matches_the_numpy_map():
    x = np.random.default_rng(3).normal(size=(200, 6)) * [1, 2, 3, 4, 5, 6]
    phis = PhiS(x)
    np.testing.assert_allclose(phis.on_tensor(torch.tensor(x[:5, None, :])).numpy()[:, 0], phis(x[:5]),
                               rtol=1e-4, atol=1e-5)


def test_fidelity_scores_by_hand():
    from harness.distillers.run import fidelity_scores

    target = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=np.float32)  # zero mean, variance 0.5 a dim
    predicted = np.array([[2, 2], [0, 2], [-2, 0], [0, -2]], dtype=np.float32)
    # cosines 1/sqrt(2), 1, 1, 1; scale s = 8 / 20 = 0.4; squared residuals 0.68 + 3 x 0.04 over 8 entries
    scores = fidelity_scores(predicted, target)
    assert scores["one_minus_mean_cosine"] == pytest.approx(1 - (2 ** -0.5 + 3) / 4)
    assert scores["variance_over_mse"] == pytest.approx(0.5 / 0.1)
    assert fidelity_scores(10 * predicted, target) == pytest.approx(scores)  # the cosine loss leaves the scale free
    nothing = fidelity_scores(target[[1, 2, 3, 0]], target)  # each prediction orthogonal to its target
    assert nothing == pytest.approx({"one_minus_mean_cosine": 1.0, "variance_over_mse": 1.0})
