"""The table convolution's hand tangent (``derivations/conv_table_jvp.py``) against
``torch.func.jvp`` of the reference layer, directly; and its mistakes differ from it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from derivations import conv_table_jvp
from derivations._lenet5_kernels import random_table, uniform_fan_in
from derivations.lenet5_layers import conv_forward
from reference import lenet5 as ref

# Float64: each output entry sums C kh kw <= 100 products of O(1) terms (rounding < 1e-14
# relative); a wrong term moves it by O(0.1).
RTOL = ATOL = 1e-10


def layer(N=2, C=3, D=4, kh=3, kw=2, Ho=5, Wo=4, seed=0, full=False):
    rng = np.random.default_rng(seed)
    arrays = {"X": rng.uniform(-1.0, 1.0, (N, C, Ho + kh - 1, Wo + kw - 1)),
              "W": uniform_fan_in(rng, (D, C, kh, kw), {}), "b": rng.uniform(-1.0, 1.0, D),
              "T": np.ones((C, D), np.int64) if full else random_table(rng, (C, D), {})}
    tangents = {k: rng.uniform(-1.0, 1.0, arrays[k].shape) for k in ("X", "W", "b")}
    return arrays, tangents


def torch_tangent(arrays, tangents, f):
    T = torch.from_numpy(arrays["T"])
    names = ("X", "W", "b")
    _, (Y_dot, named) = torch.func.jvp(
        lambda X, W, b: ref.conv_layer(X, W, b, T, f=f),
        tuple(torch.from_numpy(arrays[k]) for k in names),
        tuple(torch.from_numpy(tangents[k]) for k in names))
    return Y_dot.numpy(), named["Yt"].numpy()


@pytest.mark.parametrize("f", ["scaled-tanh", "tanh", "sigmoid", "relu"])
@pytest.mark.parametrize("full", [False, True])
def test_tangent_matches_torch_func_jvp(f, full):
    arrays, tangents = layer(seed=len(f), full=full)
    before = {k: a.copy() for k, a in {**arrays, **tangents}.items()}
    _, cache = conv_forward(**arrays, f=f)
    Y_dot, named = conv_table_jvp.jvp(tangents, cache)
    ref_Y_dot, ref_Yt_dot = torch_tangent(arrays, tangents, f)
    np.testing.assert_allclose(named["Yt"], ref_Yt_dot, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(Y_dot, ref_Y_dot, rtol=RTOL, atol=ATOL)
    for k, a in before.items():
        np.testing.assert_array_equal({**arrays, **tangents}[k], a, err_msg=f"{k} was written")


def test_tangent_survives_the_next_correlation():
    """The tangent is copied out of the kernels' workspace, which the next call reuses."""
    arrays, tangents = layer(seed=4)
    _, cache = conv_forward(**arrays, f="tanh")
    Y_dot, named = conv_table_jvp.jvp(tangents, cache)
    kept = named["Yt"].copy()
    conv_table_jvp.jvp({k: 2.0 * t for k, t in tangents.items()}, cache)
    np.testing.assert_array_equal(named["Yt"], kept)


@pytest.mark.parametrize("mistake", conv_table_jvp.MISTAKES, ids=lambda r: r.name)
def test_every_mistake_changes_the_tangent(mistake):
    arrays, tangents = layer(C=3, D=3, seed=8)
    arrays["T"] = np.array([[1, 0, 1], [1, 1, 0], [0, 0, 1]])  # not symmetric, has zeros
    _, cache = conv_forward(**arrays, f="scaled-tanh")
    right, _ = conv_table_jvp.jvp(tangents, cache)
    wrong, _ = mistake.jvp(tangents, cache)
    assert np.abs(right - wrong).max() > 1e-3
