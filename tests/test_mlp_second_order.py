"""The MLP's hand Hessian-vector product (``derivations/mlp_hvp.py``) and Gauss-Newton-vector
product (``derivations/mlp_gauss_newton.py``) against torch directly: double backward for H v,
the explicit J^T H_L J from full Jacobians for G v. Independent of the engine's oracles."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from derivations import mlp, mlp_gauss_newton, mlp_hvp
from reference import mlp as ref
from reference import mlp_gauss_newton as ref_gn

NAMES = mlp_hvp.PARAMETERS
# Float64: every entry is a sum of at most ~60 products of O(1) terms; rounding stays below
# 1e-14 relative, and a wrong term changes an entry by O(1e-2) or more.
RTOL = ATOL = 1e-10


def point(loss_name: str, N=4, d=3, M=5, C=3, seed=0):
    rng = np.random.default_rng(seed)
    dims = {"N": N, "d": d, "M": M, "C": C}
    arrays = {"x": rng.uniform(-1.0, 1.0, (N, d)), "b1": rng.uniform(-1.0, 1.0, M),
              "b2": rng.uniform(-1.0, 1.0, C),
              "W1": mlp.weights(rng, (M, d), dims), "W2": mlp.weights(rng, (C, M), dims)}
    arrays["y"] = (mlp.labels(rng, (N,), dims) if loss_name == "ce"
                   else mlp.targets(rng, (N, C), dims))
    v = {k: rng.uniform(-1.0, 1.0, arrays[k].shape) for k in NAMES}
    return arrays, v


def options(loss_name: str, f1: str) -> dict:
    loss, f2 = mlp.LOSSES[loss_name]
    return {"loss": loss, "f1": f1, "f2": f2, "lam": mlp.LAM}


def double_backward(arrays, v, dout: float, opts) -> dict[str, np.ndarray]:
    leaves = {k: torch.tensor(arrays[k], requires_grad=True) for k in NAMES}
    L, _ = ref.loss(**leaves, y=torch.from_numpy(arrays["y"]), **opts)
    grads = torch.autograd.grad(dout * L, list(leaves.values()), create_graph=True)
    inner = sum((g * torch.from_numpy(v[k])).sum() for g, k in zip(grads, NAMES))
    return {k: h.numpy() for k, h in zip(NAMES, torch.autograd.grad(inner, list(leaves.values())))}


@pytest.mark.parametrize("loss_name", list(mlp.LOSSES))
@pytest.mark.parametrize("f1", ["sigmoid", "tanh", "relu"])
def test_hvp_is_double_backward(loss_name, f1):
    arrays, v = point(loss_name, seed=hash((loss_name, f1)) % 1000)
    before = {k: a.copy() for k, a in {**arrays, **v}.items()}
    opts = options(loss_name, f1)
    _, cache = mlp.forward(**arrays, **opts)
    hand = mlp_hvp.hvp(np.asarray(-0.6), v, cache)
    truth = double_backward(arrays, v, -0.6, opts)
    for k in NAMES:
        np.testing.assert_allclose(hand[k], truth[k], rtol=RTOL, atol=ATOL, err_msg=k)
    for k, a in before.items():
        np.testing.assert_array_equal({**arrays, **v}[k], a, err_msg=f"{k} was written")


def test_dropping_the_activation_curvature_is_caught_except_where_it_is_zero():
    """The mistake differs from H v for tanh; for relu f'' = 0 and it is right (not a mistake)."""
    for f1, differs in (("tanh", True), ("relu", False)):
        arrays, v = point("ce", seed=3)
        _, cache = mlp.forward(**arrays, **options("ce", f1))
        right = mlp_hvp.hvp(np.asarray(1.0), v, cache)
        wrong = mlp_hvp.hvp_without_activation_curvature(np.asarray(1.0), v, cache)
        gap = max(np.abs(right[k] - wrong[k]).max() for k in NAMES)
        assert (gap > 1e-3) == differs, (f1, gap)


def explicit_gauss_newton(arrays, dout: float, f1: str) -> np.ndarray:
    """G as a matrix, from the full Jacobian of a2 and the Hessian of the cross-entropy in a2."""
    flat = np.concatenate([arrays[k].ravel() for k in NAMES])
    shapes = [arrays[k].shape for k in NAMES]
    labels = torch.from_numpy(arrays["y"]).long()

    def unflatten(theta):
        parts, at = [], 0
        for s in shapes:
            n = int(np.prod(s))
            parts.append(theta[at:at + n].reshape(s))
            at += n
        return parts

    def scores(theta):
        x, W1, b1, W2, b2 = unflatten(theta)
        return ref.loss(x, labels, W1, b1, W2, b2, loss="ce", f1=f1, f2="identity",
                        lam=0.0)[1]["a2"].reshape(-1)

    theta = torch.from_numpy(flat)
    J = torch.autograd.functional.jacobian(scores, theta).numpy()
    a2 = scores(theta).detach().reshape(len(labels), -1)
    HL = torch.autograd.functional.hessian(
        lambda a: torch.nn.functional.cross_entropy(a.reshape(a2.shape), labels,
                                                    reduction="sum"), a2.reshape(-1)).numpy()
    decay = np.concatenate([np.full(int(np.prod(s)), mlp.LAM if k in ("W1", "W2") else 0.0)
                            for k, s in zip(NAMES, shapes)])
    return dout * (J.T @ HL @ J + np.diag(decay))


@pytest.mark.parametrize("f1", ["sigmoid", "tanh", "relu"])
def test_gauss_newton_product_is_jt_hl_j(f1):
    arrays, v = point("ce", N=3, d=2, M=4, C=3, seed=11)
    _, cache = mlp.forward(**arrays, **options("ce", f1))
    hand = mlp_gauss_newton.gauss_newton_product(np.asarray(0.8), v, cache)
    G = explicit_gauss_newton(arrays, 0.8, f1)
    expected = G @ np.concatenate([v[k].ravel() for k in NAMES])
    got = np.concatenate([hand[k].ravel() for k in NAMES])
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(G, G.T, rtol=0, atol=1e-12)  # G is symmetric
    tensors = {k: torch.from_numpy(a) for k, a in arrays.items()}
    oracle = ref_gn.gauss_newton_product(tensors, torch.tensor(0.8, dtype=torch.float64),
                                         {k: torch.from_numpy(a) for k, a in v.items()},
                                         f1=f1, lam=mlp.LAM)
    for k in NAMES:
        np.testing.assert_allclose(oracle[k].numpy(), hand[k], rtol=RTOL, atol=ATOL, err_msg=k)


def test_gauss_newton_differs_from_the_hessian():
    """Away from a minimum the residual terms are not zero: G v != H v, so an hvp oracle that
    tests the Hessian must reject G v (and the GN records must skip such checks)."""
    arrays, v = point("ce", seed=5)
    _, cache = mlp.forward(**arrays, **options("ce", "tanh"))
    G = mlp_gauss_newton.gauss_newton_product(np.asarray(1.0), v, cache)
    H = mlp_hvp.hvp(np.asarray(1.0), v, cache)
    assert max(np.abs(G[k] - H[k]).max() for k in NAMES) > 1e-2


@pytest.mark.parametrize("scale", [{"coupling": 0.0}, {"decay": 0.0}])
def test_gauss_newton_mistakes_differ(scale):
    arrays, v = point("ce", seed=7)
    _, cache = mlp.forward(**arrays, **options("ce", "tanh"))
    right = mlp_gauss_newton.gauss_newton_product(np.asarray(1.0), v, cache)
    wrong = partial(mlp_gauss_newton.gauss_newton_product, **scale)(np.asarray(1.0), v, cache)
    assert max(np.abs(right[k] - wrong[k]).max() for k in NAMES) > 1e-3
