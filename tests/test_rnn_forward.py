"""The RNN's forward-mode derivations (``derivations/rnn_forward.py``) against torch directly:
the hand tangents against ``torch.func.jvp`` of the reference, RTRL against BPTT and autograd.
Independent of the engine's oracles, so that the kernels are pinned even where those change."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from derivations import rnn, rnn_forward
from reference import rnn as ref_bptt
from reference import rnn_forward as ref

NAMES = ("x", "h0", "U", "W", "b", "V", "c")
# Float64 throughout: sums of at most T B (M + D + C) ~ 300 products of O(1) terms, so the
# rounding error stays below 1e-13 relative; 1e-10 leaves room and still catches any wrong term
# (a wrong term changes the result by O(1) relative).
RTOL = ATOL = 1e-10


def inputs(f: str, loss: str, T: int = 7, B: int = 2, D: int = 3, M: int = 5, C: int = 4,
           seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {k: rng.uniform(-1.0, 1.0, s) for k, s in
              {"x": (T, B, D), "h0": (B, M), "W": (M, D), "b": (M,), "V": (C, M),
               "c": (C,)}.items()}
    arrays["U"] = rnn.recurrent_weights(rng, (M, M), {})
    arrays["y"] = (rng.integers(0, C, (T, B)) if loss == "ce"
                   else rng.uniform(0.0, 1.0, (T, B, C)))
    return arrays


def directions(arrays: dict[str, np.ndarray], seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(-1.0, 1.0, arrays[k].shape) for k in NAMES}


VARIANTS = [("tanh", "ce"), ("sigmoid", "l2"), ("relu", "ce")]


@pytest.mark.parametrize(("f", "loss"), VARIANTS)
def test_tangents_match_torch_func_jvp(f, loss):
    arrays = inputs(f, loss)
    tangents = directions(arrays)
    before = {k: v.copy() for k, v in {**arrays, **tangents}.items()}
    _, cache = rnn.forward(**arrays, f=f, loss=loss)
    L_dot, named = rnn_forward.jvp(tangents, cache)

    fixed_y = torch.from_numpy(arrays["y"])

    def program(*params):
        return ref.total_loss(x=params[0], y=fixed_y, **dict(zip(NAMES[1:], params[1:])), f=f,
                              loss=loss)

    primals = tuple(torch.from_numpy(arrays[k]) for k in NAMES)
    dirs = tuple(torch.from_numpy(tangents[k]) for k in NAMES)
    _, (ref_dot, ref_named) = torch.func.jvp(program, primals, dirs)
    assert np.shape(L_dot) == ()
    np.testing.assert_allclose(L_dot, ref_dot.numpy(), rtol=RTOL, atol=ATOL)
    for name in ("z", "h", "a"):
        np.testing.assert_allclose(named[name], ref_named[name].numpy(), rtol=RTOL, atol=ATOL,
                                   err_msg=name)
    for k, v in before.items():
        np.testing.assert_array_equal({**arrays, **tangents}[k], v, err_msg=f"{k} was written")


@pytest.mark.parametrize(("f", "loss"), VARIANTS)
def test_tangent_is_the_adjoint_of_bptt(f, loss):
    """<dL/dinputs, v> = L_dot(v): the dot-product test, with no reference."""
    arrays = inputs(f, loss, seed=3)
    tangents = directions(arrays, seed=4)
    _, cache = rnn.forward(**arrays, f=f, loss=loss)
    grads = rnn_forward.input_gradients(np.asarray(0.7), cache)
    L_dot, _ = rnn_forward.jvp(tangents, cache)
    pairing = sum(np.vdot(grads[k], tangents[k]) for k in NAMES)
    np.testing.assert_allclose(pairing, 0.7 * L_dot, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(("f", "loss"), VARIANTS)
@pytest.mark.parametrize("T", [1, 6])
def test_rtrl_equals_bptt_and_autograd(f, loss, T):
    arrays = inputs(f, loss, T=T, seed=5)
    _, cache = rnn.forward(**arrays, f=f, loss=loss)
    dout = np.asarray(-1.3)
    rtrl = rnn_forward.rtrl_backward(dout, cache)
    bptt = rnn.backward(dout, cache)
    tensors = {k: torch.tensor(v, requires_grad=k != "y") for k, v in arrays.items()}
    L, _ = ref_bptt.total_loss(**tensors, f=f, loss=loss)
    params = ("h0", "U", "W", "b", "V", "c")
    auto = dict(zip(params, torch.autograd.grad(L * -1.3, [tensors[k] for k in params])))
    assert set(rtrl) == {"a", *params}
    for k in params:
        np.testing.assert_allclose(rtrl[k], bptt[k], rtol=RTOL, atol=ATOL, err_msg=k)
        np.testing.assert_allclose(rtrl[k], auto[k].numpy(), rtol=RTOL, atol=ATOL, err_msg=k)


def test_rtrl_keeps_float32():
    arrays = {k: v.astype(np.float32) if v.dtype.kind == "f" else v
              for k, v in inputs("tanh", "ce").items()}
    _, cache = rnn.forward(**arrays, f="tanh", loss="ce")
    grads = rnn_forward.rtrl_backward(np.asarray(1.0, np.float32), cache)
    assert {g.dtype for g in grads.values()} == {np.dtype(np.float32)}


def test_rtrl_sensitivities_are_the_jacobian_of_the_state():
    """The sensitivity of h_t to U (RT2, RT3), column by column, against the tangent of h_t."""
    arrays = inputs("tanh", "ce", T=4, B=2, M=3, D=2, C=2, seed=9)
    _, cache = rnn.forward(**arrays, f="tanh", loss="ce")
    seen = {}
    rnn_forward.sensitivities(cache, lambda t, S: seen.setdefault(t, S["U"].copy()))
    zeros = {k: np.zeros_like(arrays[k]) for k in NAMES}
    for i, j in [(0, 1), (2, 0)]:
        U_dot = np.zeros((3, 3))
        U_dot[i, j] = 1.0
        _, named = rnn_forward.jvp({**zeros, "U": U_dot}, cache)
        for t in range(4):
            np.testing.assert_allclose(seen[t][:, :, i, j], named["h"][t], rtol=RTOL, atol=ATOL)


def test_rtrl_costs_grow_as_m4_in_flops():
    """rtrl_flops per step and sequence, at D = C = 0 and large M, is 2 M^4 to leading order."""
    flops = partial(rnn_forward.rtrl_flops)
    ratio = flops({"T": 1, "B": 1, "M": 2000, "D": 0, "C": 0}) / (2 * 2000**4)
    assert ratio == pytest.approx(1.0, rel=1e-2)
