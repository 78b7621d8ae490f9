"""Attention-specific checks the generic record tests cannot make: exact zeros at masked keys,
rows of P summing to 1, the full softmax Jacobian against its diagonal, one query, and the hand
gradients against PyTorch's own ``scaled_dot_product_attention`` (not the record's reference)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from derivations import attention, attention_mistakes
from handgrad.cases import Case, build_inputs, upstream

CAUSAL = attention.make("sampling", causal=True)
CROSS = attention.make("sampling", causal=False)


def run(record, seed: int, dtype: str = "float64", **dims):
    """Inputs, dout, the cache and the hand gradients of one case."""
    case = Case.of(dims, seed)
    inputs = build_inputs(record, case, dtype)
    out, cache = record.forward(**inputs)
    dout = upstream(out.shape, case, dtype)
    return inputs, dout, cache, record.backward(dout, cache)


def assert_close(hand: np.ndarray, expected: np.ndarray, rtol: float, what: str = "") -> None:
    """|hand - expected| <= rtol * (|expected| + max |expected|): the engine's rule, atol = rtol."""
    bound = rtol * (np.abs(expected) + np.abs(expected).max())
    assert hand.shape == expected.shape, (what, hand.shape, expected.shape)
    assert np.all(np.abs(hand - expected) <= bound), (what, float(np.abs(hand - expected).max()))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("seed", range(3))
def test_masked_keys_have_exactly_zero_weight_and_gradient(dtype, seed):
    T = 7
    inputs, dout, cache, grads = run(CAUSAL, seed, dtype, B=2, T=T, d=3, dv=4)
    future = ~attention.causal_mask(T, T)
    assert future.sum() == T * (T - 1) // 2
    assert not cache.P[:, future].any(), f"seed={seed} {dtype}: P non-zero at a masked key"
    assert not grads["scores"][:, future].any(), f"seed={seed} {dtype}: dscores there"
    # ... and nowhere else: exact zeros only where the mask put them.
    assert np.all(cache.P[:, ~future] > 0)
    # Allowed entries in row-major order: query 0's single key first, whose P is exactly 1 and
    # whose dscores is dP - dP = 0; every other allowed entry is non-zero.
    allowed_dscores = grads["scores"][:, ~future]
    assert not allowed_dscores[:, 0].any()
    assert np.all(allowed_dscores[:, 1:] != 0)
    for key, value in grads.items():
        assert np.all(np.isfinite(value)), f"seed={seed} {dtype}: {key} not finite"


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_rows_of_P_sum_to_one(causal, dtype):
    record = CAUSAL if causal else CROSS
    dims = {"B": 3, "T": 6, "d": 4, "dv": 2, "S": 5}
    _, _, cache, _ = run(record, 3, dtype, **{k: v for k, v in dims.items() if k in record.dims})
    rows = cache.P.astype(np.float64).sum(axis=2)
    # A sum of at most 6 positive terms, each rounded once after the division: within
    # 8 eps of 1 in either dtype.
    assert np.all(np.abs(rows - 1.0) <= 8 * np.finfo(dtype).eps), rows


@pytest.mark.parametrize("seed", range(3))
def test_softmax_backward_is_the_full_jacobian_not_its_diagonal(seed):
    """(SA7) against the explicit Jacobian diag(p) - p p^T from torch.autograd.functional, row by
    row, and the diagonal alone (a mistake record) against it: wrong in every row with more than
    one key, exact in the row with one."""
    T = 5
    _, dout, cache, grads = run(CAUSAL, seed, B=1, T=T, d=3, dv=2)
    dP = grads["P"][0]
    for i in range(T):
        keys = slice(0, i + 1)
        a = torch.from_numpy(cache.scores[0, i, keys].copy())
        jacobian = torch.autograd.functional.jacobian(lambda r: torch.softmax(r, 0), a).numpy()
        p = cache.P[0, i, keys]
        # The explicit form of the Jacobian, exactly the derivation's claim.
        assert_close(jacobian, np.diag(p) - np.outer(p, p), rtol=1e-14, what=f"J row {i}")
        full = jacobian.T @ dP[i, keys]
        assert_close(grads["scores"][0, i, keys], full, rtol=1e-13, what=f"dscores row {i}")
        diagonal = np.diag(jacobian) * dP[i, keys]
        off = np.abs(diagonal - full).max() > 1e-6 * np.abs(full).max()
        assert off == (i > 0), f"row {i}: the diagonal is exact only with one key"
    diag_grads = attention_mistakes.diagonal_softmax_jacobian(dout, cache)
    assert not np.allclose(diag_grads["scores"], grads["scores"])


def test_one_query_copies_its_value():
    """T = 1: P = 1, so dQ = dK = dscores = 0 exactly and dV = dout."""
    _, dout, cache, grads = run(CAUSAL, 5, B=3, T=1, d=4, dv=2)
    assert np.all(cache.P == 1.0)
    for key in ("scores", "Q", "K"):
        assert not grads[key].any(), key
    np.testing.assert_array_equal(grads["V"], dout)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("seed", range(2))
def test_matches_torch_scaled_dot_product_attention(causal, seed):
    record = CAUSAL if causal else CROSS
    dims = {"B": 2, "T": 6, "d": 5, "dv": 3} | ({} if causal else {"S": 4})
    inputs, dout, cache, grads = run(record, seed, **dims)
    leaves = {k: torch.from_numpy(v.copy()).requires_grad_() for k, v in inputs.items()}
    out = F.scaled_dot_product_attention(*leaves.values(), is_causal=causal)
    expected = torch.autograd.grad(out, list(leaves.values()), torch.from_numpy(dout))
    hand_out, _ = record.forward(**inputs)
    # Products of length <= max(S, d) = 6 summed in other orders: ~10 eps relative to the
    # largest term; 1e-12 leaves a factor ~50.
    assert_close(hand_out, out.detach().numpy(), rtol=1e-12, what="out")
    for key, value in zip(leaves, expected):
        assert_close(grads[key], value.numpy(), rtol=1e-12, what=f"{key} seed={seed}")
