"""LSTM-specific checks the generic record tests cannot make: the hand BPTT against PyTorch's own
``nn.LSTM`` and ``nn.LSTMCell`` (not the record's reference), the step-by-step form the mistakes
are written in, the two mistakes that are exact at T = 1, a long sequence in linear memory, and
gates one column wide."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from derivations import lstm, lstm_mistakes
from handgrad.cases import Case, build_inputs
from reference import lstm as ref


def inputs_for(loss: str, seed: int, dtype: str = "float64", **dims) -> dict[str, np.ndarray]:
    """Inputs drawn by the record's own samplers (fan-in-scaled weights)."""
    record = lstm.make("sampling", loss)
    return build_inputs(record, Case.of(dims, seed), dtype)


def assert_close(hand: np.ndarray, expected: np.ndarray, rtol: float, what: str = "") -> None:
    """|hand - expected| <= rtol * (|expected| + max |expected|): the engine's rule, atol = rtol."""
    bound = rtol * (np.abs(expected) + np.abs(expected).max())
    assert hand.shape == expected.shape, (what, hand.shape, expected.shape)
    assert np.all(np.abs(hand - expected) <= bound), (what, float(np.abs(hand - expected).max()))


def loss_of(a: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    if loss == "ce":
        return F.cross_entropy(a.flatten(0, 1), y.flatten(), reduction="sum")
    return 0.5 * ((a - y) ** 2).sum()


def torch_lstm_gradients(inputs, loss: str, dout: float) -> tuple[float, dict[str, np.ndarray]]:
    """L and dS/d input from ``torch.nn.LSTM`` (cuDNN's formulation, one layer) with the hand
    record's weights loaded: weight_ih = Wx^T, weight_hh = Wh^T, bias_ih = b, bias_hh = 0."""
    T, B, D = inputs["x"].shape
    H = inputs["h0"].shape[1]
    cell = torch.nn.LSTM(D, H).double()
    with torch.no_grad():
        cell.weight_ih_l0.copy_(torch.from_numpy(inputs["Wx"].T))
        cell.weight_hh_l0.copy_(torch.from_numpy(inputs["Wh"].T))
        cell.bias_ih_l0.copy_(torch.from_numpy(inputs["b"]))
        cell.bias_hh_l0.zero_()
    t = {k: torch.from_numpy(v.copy()) for k, v in inputs.items()}
    leaves = {k: t[k].requires_grad_() for k in ("x", "h0", "c0", "Wy", "by")}
    hs, _ = cell(leaves["x"], (leaves["h0"][None], leaves["c0"][None]))
    total = loss_of(hs @ leaves["Wy"] + leaves["by"], t["y"], loss)
    params = [cell.weight_ih_l0, cell.weight_hh_l0, cell.bias_ih_l0, cell.bias_hh_l0]
    grads = torch.autograd.grad(dout * total, [*leaves.values(), *params])
    out = {k: g.numpy() for k, g in zip(leaves, grads)}
    d_ih, d_hh, d_bias_ih, d_bias_hh = (g.numpy() for g in grads[len(leaves):])
    # Both biases enter z_t the same way; torch sums their gradients in different orders.
    assert_close(d_bias_ih, d_bias_hh, rtol=1e-13, what="bias_ih vs bias_hh")
    return total.item(), {**out, "Wx": d_ih.T, "Wh": d_hh.T, "b": d_bias_ih}


@pytest.mark.parametrize("loss", ["ce", "l2"])
@pytest.mark.parametrize("seed", [0, 1])
def test_bptt_matches_torch_nn_lstm(loss, seed):
    inputs = inputs_for(loss, seed, T=5, B=3, D=2, H=4, C=3)
    dout = 1.3
    L, cache = lstm.forward(**inputs, loss=loss)
    hand = lstm.backward(np.asarray(dout), cache)
    expected_L, expected = torch_lstm_gradients(inputs, loss, dout)
    # Two float64 programs summing the same products in a different order differ by about
    # n eps relative to the largest term (n <= T (D + H) = 30 here, 1e-14); 1e-10 leaves a factor
    # 1e4 and still fails any wrong term, whose size is far above 1e-10 of the largest.
    assert abs(float(L) - expected_L) <= 1e-10 * abs(expected_L), (seed, loss, L, expected_L)
    for key, value in expected.items():
        assert_close(hand[key], value, rtol=1e-10, what=f"{key} seed={seed} loss={loss}")


@pytest.mark.parametrize("loss", ["ce", "l2"])
def test_one_step_is_one_lstm_cell(loss):
    """At T = 1 both recursions are empty: the gradients are those of one ``nn.LSTMCell``."""
    inputs = inputs_for(loss, 2, T=1, B=3, D=4, H=2, C=5)
    D, H = inputs["Wx"].shape[0], inputs["Wh"].shape[0]
    cell = torch.nn.LSTMCell(D, H).double()
    with torch.no_grad():
        cell.weight_ih.copy_(torch.from_numpy(inputs["Wx"].T))
        cell.weight_hh.copy_(torch.from_numpy(inputs["Wh"].T))
        cell.bias_ih.copy_(torch.from_numpy(inputs["b"]))
        cell.bias_hh.zero_()
    t = {k: torch.from_numpy(v.copy()) for k, v in inputs.items()}
    leaves = {k: t[k].requires_grad_() for k in ("x", "h0", "c0", "Wy", "by")}
    h1, _ = cell(leaves["x"][0], (leaves["h0"], leaves["c0"]))
    total = loss_of((h1 @ leaves["Wy"] + leaves["by"])[None], t["y"], loss)
    grads = torch.autograd.grad(total, [*leaves.values(), cell.weight_ih, cell.weight_hh,
                                        cell.bias_ih])
    expected = {**{k: g.numpy() for k, g in zip(leaves, grads)}, "Wx": grads[5].numpy().T,
                "Wh": grads[6].numpy().T, "b": grads[7].numpy()}
    _, cache = lstm.forward(**inputs, loss=loss)
    hand = lstm.backward(np.asarray(1.0), cache)
    for key, value in expected.items():
        # One step: a handful of float64 operations per entry; 1e-12 leaves a factor ~100.
        assert_close(hand[key], value, rtol=1e-12, what=key)


@pytest.mark.parametrize("loss", ["ce", "l2"])
@pytest.mark.parametrize("T", [1, 2, 6])
def test_stepwise_backward_equals_vectorised(loss, T):
    """The form the mistakes are transcribed in is the right backward when no mistake is on, so
    each mistake record differs from ``lstm.backward`` by its one mistake only."""
    inputs = inputs_for(loss, 4, T=T, B=2, D=3, H=4, C=3)
    _, cache = lstm.forward(**inputs, loss=loss)
    vectorised = lstm.backward(np.asarray(0.7), cache)
    stepwise = lstm_mistakes.stepwise_backward(np.asarray(0.7), cache)
    assert set(stepwise) == set(vectorised)
    for key in vectorised:
        # Same products, same order per step, different buffers: rounding differs at most in
        # the last bits of a few terms; 1e-13 is ~500 eps.
        assert_close(stepwise[key], vectorised[key], rtol=1e-13, what=key)


@pytest.mark.parametrize("mistake", [{"carry_h": False}, {"carry_c": False}], ids=str)
def test_recurrent_mistakes_are_exact_at_one_step_only(mistake):
    """Why the sampled cases need T >= 2: these two mistakes change nothing at T = 1."""
    for T, exact in ((1, True), (2, False)):
        inputs = inputs_for("ce", 5, T=T, B=2, D=3, H=4, C=3)
        _, cache = lstm.forward(**inputs, loss="ce")
        right = lstm.backward(np.asarray(1.0), cache)
        wrong = lstm_mistakes.stepwise_backward(np.asarray(1.0), cache, **mistake)
        # A dropped path at T = 2 changes dh0 by a term of the size of dh0 itself; 1e-6 of the
        # largest entry separates that from the 1e-16 rounding of two equal computations.
        differs = np.abs(wrong["h0"] - right["h0"]).max() > 1e-6 * np.abs(right["h0"]).max()
        assert differs != exact, (mistake, T)


def test_thousand_steps_match_autograd_in_linear_memory():
    T, B, D, H, C = 1000, 2, 3, 4, 5
    inputs = inputs_for("ce", 0, T=T, B=B, D=D, H=H, C=C)
    tracemalloc.start()
    loss, cache = lstm.forward(**inputs, loss="ce")
    grads = lstm.backward(np.asarray(0.8), cache)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Linear memory: forward and backward keep about 8 arrays of T B G or T B H float64 numbers
    # (the gates, their gradients and derivatives, dz; h, c, tanh c, dh, dc: ~0.7 MB here);
    # 60 T B (D + G + C) numbers bound that with a factor ~4, while one (T, T, B, H) array of
    # pairs of steps would be T^2 B H * 8 = 64 MB, 30 times the bound.
    assert peak < 60 * T * B * (D + 4 * H + C) * 8, peak
    tensors = {k: torch.from_numpy(v.copy()) for k, v in inputs.items()}
    leaves = {k: t.requires_grad_() for k, t in tensors.items() if k != "y"}
    total, inter = ref.total_loss(**tensors, loss="ce")
    # the record's intermediates (the reference also returns the steps and L_t for the page)
    wrt = {**leaves, **{k: inter[k] for k in ("a", "h", "c", "gates", "z")}}
    expected = torch.autograd.grad(0.8 * total, list(wrt.values()))
    assert abs(float(loss) - total.item()) <= 1e-9 * abs(total.item())
    for key, value in zip(wrt, expected):
        # 1e-9 as the engine's float64 tolerance; the sums run over up to 1000 steps.
        assert_close(grads[key], value.numpy(), rtol=1e-9, what=key)


@pytest.mark.parametrize("seed", range(4))
def test_one_unit_gates_in_float32(seed):
    """H = 1 makes each gate a strided column of the packed (B, 4) block, where NumPy 2.4.6's
    in-place ``np.negative`` miscomputes: the float32 forward must still agree with float64."""
    inputs = inputs_for("ce", seed, "float32", T=4, B=3, D=2, H=1, C=3)
    widened = {k: (v.astype(np.float64) if v.dtype == np.float32 else v)
               for k, v in inputs.items()}
    L32, c32 = lstm.forward(**inputs, loss="ce")
    L64, c64 = lstm.forward(**widened, loss="ce")
    # float32 rounding (eps 1.2e-7) through 4 steps of a few operations each stays below 1e-5
    # relative; the miscomputed sigmoid gave 4e-4.
    assert abs(float(L32) - float(L64)) <= 1e-5 * abs(float(L64)), (seed, L32, L64)
    assert_close(c32.gates.astype(np.float64), c64.gates, rtol=1e-5, what=f"gates seed={seed}")
    g32, g64 = lstm.backward(np.asarray(1.0, np.float32), c32), lstm.backward(np.asarray(1.0), c64)
    for key, value in g64.items():
        # The backward's sums and products over 4 steps in float32 stay within 1e-5 of the
        # largest entry; 1e-4 leaves a factor 10 and fails the 0.3 errors of the broken sigmoid.
        assert g32[key].dtype == np.float32, key
        assert_close(g32[key].astype(np.float64), value, rtol=1e-4, what=f"{key} seed={seed}")
