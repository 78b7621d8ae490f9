"""Facts of the batch-norm derivation (batchnorm.md): the staged and compact dL/dx agree, the
reference is torch's own batch norm, the invariances of the gradient, and the degenerate batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from derivations import batchnorm
from reference import batchnorm as ref

EPS64 = float(np.finfo(np.float64).eps)
SHAPES = [(3, 1), (5, 4), (64, 7), (2, 3, 2, 2), (4, 2, 5, 3), (1, 3, 4, 4)]


def sample(shape, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=shape)
    gamma = batchnorm.gamma_sampler(rng, (shape[1],), {})
    beta = rng.uniform(-1.0, 1.0, size=shape[1])
    dy = rng.standard_normal(shape)
    return x, gamma, beta, dy


def where(shape, seed) -> str:
    return f"shape {shape}, seed {seed}, float64 (tests/test_batchnorm.py::sample)"


@pytest.mark.parametrize("shape", SHAPES)
def test_staged_and_compact_dx_agree_to_rounding(shape):
    """(B12) and (B13) are the same function, rearranged. Each is a sum of terms of size at most
    |gamma| s max|dy| m per entry (before the 1/m), rounded over about m additions: 4 m eps of
    that size bounds the difference between the two orders of summation."""
    seed = SHAPES.index(shape)
    x, gamma, beta, dy = sample(shape, seed)
    _, c = batchnorm.forward(x, gamma, beta)
    s = batchnorm.staged(dy, c)
    p = batchnorm.parameter_grads(dy, c)
    compact = batchnorm.dx_compact(dy, c, p["beta"], p["gamma"])
    staged = batchnorm.dx_staged(s, c)
    size = float(np.abs(c.gamma * c.inv_std).max() * np.abs(dy).max())
    np.testing.assert_allclose(staged, compact, rtol=0, atol=4 * c.m * EPS64 * size,
                               err_msg=where(shape, seed))
    assert np.abs(compact).max() > 1e3 * 4 * c.m * EPS64 * size, "dx too small to compare"


@pytest.mark.parametrize("shape", SHAPES)
def test_reference_is_torch_batch_norm_in_training_mode(shape):
    """The oracle's program (var_mean, rsqrt) against F.batch_norm itself: output and every
    gradient, float64. Two float64 programs of a few reductions over m <= 448 values differ
    by O(m eps) relative to the values summed; 1e-12 of the largest entry holds that."""
    seed = 100 + SHAPES.index(shape)
    x, gamma, beta, dy = sample(shape, seed)
    ours = [torch.from_numpy(a.copy()).requires_grad_(True) for a in (x, gamma, beta)]
    theirs = [torch.from_numpy(a.copy()).requires_grad_(True) for a in (x, gamma, beta)]
    y, _ = ref.batch_norm(*ours, eps=batchnorm.EPS)
    y_torch = F.batch_norm(theirs[0], None, None, theirs[1], theirs[2], training=True,
                           eps=batchnorm.EPS)
    up = torch.from_numpy(dy)
    (y * up).sum().backward()
    (y_torch * up).sum().backward()
    for name, a, b in [("y", y, y_torch)] + [(f"d{k}", o.grad, t.grad) for k, o, t in
                                              zip(("x", "gamma", "beta"), ours, theirs)]:
        a, b = a.detach().numpy(), b.detach().numpy()
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * float(np.abs(b).max()),
                                   err_msg=f"{name}: {where(shape, seed)}")


@pytest.mark.parametrize("shape", SHAPES)
def test_gradient_ignores_the_shift_and_scale_the_normalisation_removes(shape):
    """y does not change when a constant is added to a feature, so sum_i dL/dx_i = 0; an upstream
    dy = 1 and dy = xhat are exactly the directions normalisation removes, giving dx = 0 and
    dx = gamma s xhat eps / (var + eps) (by (B13): sum xhat^2 = m var / (var + eps))."""
    seed = 200 + SHAPES.index(shape)
    x, gamma, beta, dy = sample(shape, seed)
    _, c = batchnorm.forward(x, gamma, beta)

    def rounding(up: np.ndarray) -> float:
        """Rounding of one entry of (B13): about m additions of terms up to |gamma| s max|up|
        each (before the 1/m); 4 m eps of that size bounds it."""
        return 4 * c.m * EPS64 * float(np.abs(c.gamma * c.inv_std).max() * np.abs(up).max())

    dx = batchnorm.backward(dy, c)["x"]
    np.testing.assert_allclose(dx.sum(axis=c.axes), 0.0, atol=c.m * rounding(dy),
                               err_msg=where(shape, seed))
    ones = np.ones(shape)
    np.testing.assert_allclose(batchnorm.backward(ones, c)["x"], 0.0, atol=rounding(ones),
                               err_msg=where(shape, seed))
    var = 1.0 / c.inv_std ** 2 - batchnorm.EPS
    scaled = batchnorm.backward(c.xhat.copy(), c)["x"]
    expected = c.gamma * c.inv_std * c.xhat * batchnorm.EPS / (var + batchnorm.EPS)
    np.testing.assert_allclose(scaled, expected, rtol=0, atol=rounding(c.xhat),
                               err_msg=where(shape, seed))


def test_a_single_value_per_feature_has_zero_gradient():
    """m = 1: x - mu is exactly 0, so xhat = 0 and (B13) gives dx = gamma s (dy - dy) = 0
    exactly. This is why the records keep N >= 2 (and m >= 3)."""
    x, gamma, beta, dy = sample((1, 4), 300)
    _, c = batchnorm.forward(x, gamma, beta)
    grads = batchnorm.backward(dy, c)
    assert not np.any(grads["x"]) and not np.any(grads["gamma"])
    np.testing.assert_array_equal(grads["beta"], dy[0])


def test_three_values_by_hand():
    """x = (0, 1, 2): mu = 1, var = 2/3, s = 1 / sqrt(2/3 + eps), xhat = (-s, 0, s). With
    gamma = 1 and dy = (1, 0, 0): sum dy = 1 and sum dy xhat = -s, so (B13) gives
    dx = (s / 3) (3 dy - 1 + s xhat) = (s / 3) (2 - s^2, -1, s^2 - 1), about (s / 3)(1/2, -1, 1/2).
    Float64, a handful of operations: agreement to a few eps."""
    x = np.array([[0.0], [1.0], [2.0]])
    y, c = batchnorm.forward(x, np.ones(1), np.zeros(1))
    s = 1.0 / np.sqrt(2.0 / 3.0 + batchnorm.EPS)
    np.testing.assert_allclose(y.ravel(), [-s, 0.0, s], rtol=1e-15, atol=1e-15)
    dx = batchnorm.backward(np.array([[1.0], [0.0], [0.0]]), c)["x"].ravel()
    np.testing.assert_allclose(dx, s / 3 * np.array([2 - s * s, -1.0, s * s - 1]),
                               rtol=1e-14, atol=1e-15)


def test_unbiased_variance_is_not_what_training_mode_uses():
    """torch's training-mode output matches (B3) with m, not m - 1 (the mistake record's
    forward)."""
    x, gamma, beta, _ = sample((6, 3), 400)
    torch_y = F.batch_norm(torch.from_numpy(x), None, None, torch.from_numpy(gamma),
                           torch.from_numpy(beta), training=True, eps=batchnorm.EPS).numpy()
    biased, _ = batchnorm.forward(x, gamma, beta)
    unbiased, _ = batchnorm.forward(x, gamma, beta, correction=1)
    np.testing.assert_allclose(biased, torch_y, rtol=1e-13, atol=1e-14)
    assert np.abs(unbiased - torch_y).max() > 1e-3
